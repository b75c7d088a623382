/* dpo.c: the DPO objective (see dpo.h). The token-level passes are ppo.c's
 * sequence log-probs and their backward (parallel over rows); the per-pair
 * loss, its derivative and the statistics are a serial O(B) loop in double,
 * reduced in pair order, so results do not depend on the thread count. */
#include "dpo.h"

#include <math.h>
#include <stdlib.h>

#include "ppo.h"

/* 1 when the row has a valid token. */
static int row_has_token(o1p_int T, const uint8_t *m) {
    for (o1p_int t = 0; t < T; t++)
        if (m[t]) return 1;
    return 0;
}

/* Sequence log-probs of one side into seq[B]; O1P_EVALUE (res->bad_index)
 * when a valid entry is NaN or +-inf. ppo_sequence_logprobs_forward refuses
 * NaN and +inf and lets -inf through (a -inf sum): find that entry here. */
static int side_logprobs(o1p_int B, o1p_int T, const float *x, const uint8_t *m, int reduce, double *seq,
                         int which, dpo_result *res) {
    o1p_int bad = 0;
    res->bad_which = which;
    if (ppo_sequence_logprobs_forward(B, T, x, m, reduce, seq, &bad) != O1P_OK) {
        res->bad_index = bad;
        return O1P_EVALUE;
    }
    for (o1p_int b = 0; b < B; b++) {
        if (isfinite(seq[b])) continue;
        res->bad_index = b * T; /* a fallback in range, should the values change under us */
        for (o1p_int t = 0; t < T; t++) {
            if (m[b * T + t] && !isfinite(x[b * T + t])) {
                res->bad_index = b * T + t;
                break;
            }
        }
        return O1P_EVALUE;
    }
    return O1P_OK;
}

/* -log sigmoid(z) = softplus(-z) = max(-z, 0) + log1p(exp(-|z|)): exp never
 * overflows, and log1p keeps the small tail of a large positive margin (where
 * 1 + exp(-z) rounds to 1). Exact at z = +-inf (0 and +inf). */
static double neg_log_sigmoid(double z) {
    return (z < 0 ? -z : 0.0) + log1p(exp(-fabs(z)));
}

/* sigmoid(-z) = 1 - sigmoid(z) without cancellation: -d loss / d z. */
static double sigmoid_neg(double z) {
    if (z >= 0) {
        double e = exp(-z);
        return e / (1.0 + e);
    }
    return 1.0 / (1.0 + exp(z));
}

int dpo_loss_forward_backward(const dpo_config *cfg, o1p_int B, o1p_int Tc, o1p_int Tr, const float *chosen,
                              const uint8_t *chosen_mask, const float *rejected, const uint8_t *rejected_mask,
                              const double *ref_chosen, const double *ref_rejected, const double *weights,
                              float *grad_chosen, float *grad_rejected, dpo_result *res) {
    res->bad_index = res->bad_row = -1;
    res->bad_which = 0;
    int ovf = 0;
    o1p_int nscratch = o1p_size_mul(B, 4, &ovf);
    if (ovf || B < 1) return O1P_EVALUE;
    double *seq_c = (double *)malloc((size_t)nscratch * sizeof(double));
    uint8_t *pad = (uint8_t *)calloc((size_t)B, 1);
    if (seq_c == NULL || pad == NULL) {
        free(seq_c);
        free(pad);
        return O1P_ENOMEM;
    }
    double *seq_r = seq_c + B, *d_c = seq_c + 2 * B, *d_r = seq_c + 3 * B;
    const int reduce = cfg->length_normalize ? PPO_REDUCE_MEAN : PPO_REDUCE_SUM;
    int st = O1P_OK;

    /* empty rows: both sides empty is a padding pair, one side empty an error */
    for (o1p_int b = 0; b < B; b++) {
        int hc = row_has_token(Tc, chosen_mask + b * Tc), hr = row_has_token(Tr, rejected_mask + b * Tr);
        if (hc != hr) {
            res->bad_row = b;
            res->bad_which = hc ? 1 : 0;
            st = O1P_EVALUE;
            goto done;
        }
        pad[b] = !hc;
    }
    st = side_logprobs(B, Tc, chosen, chosen_mask, reduce, seq_c, 0, res);
    if (st == O1P_OK) st = side_logprobs(B, Tr, rejected, rejected_mask, reduce, seq_r, 1, res);
    if (st != O1P_OK) goto done;

    const double beta = cfg->beta, invB = 1.0 / (double)B;
    double loss = 0, margin = 0, reward_c = 0, reward_r = 0;
    int64_t count = 0, wins = 0;
    for (o1p_int b = 0; b < B; b++) {
        d_c[b] = d_r[b] = 0.0;
        if (pad[b]) continue;
        /* implicit rewards; each difference is of two finite doubles */
        double rc = beta * (seq_c[b] - ref_chosen[b]);
        double rr = beta * (seq_r[b] - ref_rejected[b]);
        double z = rc - rr;
        if (!isfinite(z) || !isfinite(rc) || !isfinite(rr)) { /* beyond float64: absurd references or beta */
            res->bad_row = b;
            res->bad_which = 2;
            st = O1P_EVALUE;
            goto done;
        }
        count++;
        wins += z > 0;
        margin += z;
        reward_c += rc;
        reward_r += rr;
        double w = (weights ? weights[b] : 1.0) * invB;
        if (w == 0.0) continue; /* no 0 * inf for a pair of weight 0 */
        loss += w * neg_log_sigmoid(z);
        /* d l / d pi_c = -beta sigmoid(-z), d l / d pi_r = +beta sigmoid(-z) */
        double g = w * beta * sigmoid_neg(z);
        d_c[b] = -g;
        d_r[b] = g;
    }
    /* d pi / d logp[b,t]: 1 (sum) or 1 / n_b (mean) on valid tokens, 0 elsewhere */
    ppo_sequence_logprobs_backward(B, Tc, d_c, chosen_mask, reduce, grad_chosen);
    ppo_sequence_logprobs_backward(B, Tr, d_r, rejected_mask, reduce, grad_rejected);
    res->loss = loss;
    res->count = count;
    if (count > 0) {
        res->margin_mean = margin / (double)count;
        res->accuracy = (double)wins / (double)count;
        res->chosen_reward_mean = reward_c / (double)count;
        res->rejected_reward_mean = reward_r / (double)count;
    } else {
        res->margin_mean = res->accuracy = res->chosen_reward_mean = res->rejected_reward_mean = 0.0;
    }
done:
    free(seq_c);
    free(pad);
    return st;
}
