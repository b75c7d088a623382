/* ppo.h: per-sequence log-probs and O1-Pruner's off-policy PPO-clip objective
 * (method.md step 3) with the token-level variants of its peers (TRL GRPO,
 * verl), loss and d loss / d logp in one pass. float32 per token, double for
 * every sum over a sequence or the batch and for per-sequence ratios.
 * A mask entry is valid when its byte is nonzero (any value, not only 1);
 * masked entries of the float inputs are never used
 * (any value, NaN included, is allowed there). */
#ifndef O1P_PPO_H
#define O1P_PPO_H

#include "o1p.h"

enum { PPO_REDUCE_SUM = 0, PPO_REDUCE_MEAN = 1 };

/* Per-sequence sum (or mean over valid tokens) of token log-probs.
 * logp[B,T], mask[B,T] -> out[B] (overwritten). A fully masked row gives 0.
 * -inf entries are allowed (the sum is -inf). O1P_EVALUE when a valid entry is
 * NaN or +inf (or -inf meets +inf); *bad = flat index of the first one. */
int ppo_sequence_logprobs_forward(o1p_int B, o1p_int T, const float *logp, const uint8_t *mask,
                                  int reduce, double *out, o1p_int *bad);

/* Backward of the above: grad[B] -> out[B,T] (overwritten):
 * out[b,t] = mask[b,t] * grad[b] (sum) or mask[b,t] * grad[b] / n_b (mean),
 * 0 on a fully masked row. */
void ppo_sequence_logprobs_backward(o1p_int B, o1p_int T, const double *grad, const uint8_t *mask,
                                    int reduce, float *out);

/* Where the importance ratio lives. */
enum { PPO_RATIO_SEQUENCE_MEAN = 0, PPO_RATIO_TOKEN = 1 };

/* How the loss of each sequence (sequence ratio) or token (token ratio) becomes
 * one number. n_b = valid tokens of row b, N = sum_b n_b. */
enum {
    PPO_AGG_MEAN = 0,                /* sequence: sum_b l_b / B (the public code) */
    PPO_AGG_SUM = 1,                 /* sequence: sum_b l_b */
    PPO_AGG_TOKEN_MEAN = 2,          /* token: sum l / max(N, 1) (TRL bnpo, verl token-mean) */
    PPO_AGG_SEQ_MEAN_TOKEN_MEAN = 3, /* token: mean_b of sum_t l / max(n_b, 1) (TRL grpo) */
    PPO_AGG_SEQ_MEAN_TOKEN_SUM = 4,  /* token: mean_b of sum_t l (verl) */
    PPO_AGG_DR_GRPO = 5              /* token: sum l / (B * T) (TRL dr_grpo) */
};

typedef struct {
    int ratio;             /* PPO_RATIO_* */
    int aggregate;         /* PPO_AGG_*, compatible with ratio */
    double eps_low;        /* ratio clipped to [1 - eps_low, 1 + eps_high] */
    double eps_high;
    double dual_clip;      /* c > 1: for A < 0 the loss is min(loss, -A c); 0: off */
    double logratio_clamp; /* c > 0: log-ratio clamped to [-c, c] first; 0: off */
} ppo_clip_config;

typedef struct {
    double loss;
    /* statistics over valid tokens (token ratio) or non-empty sequences
     * (sequence ratio); `count` of them. With count 0: fractions and kl 0,
     * ratio mean/min/max 1. */
    double clip_fraction;      /* the clipped branch is strictly the larger */
    double dual_clip_fraction; /* the dual-clip bound is strictly active */
    double approx_kl;          /* mean of -(clamped) log-ratio (k1 estimator) */
    double ratio_mean, ratio_min, ratio_max;
    int64_t count;
    /* on O1P_EVALUE: flat index into [B,T] and which input: 0 logp, 1 ref_logp */
    o1p_int bad_index;
    int bad_which;
} ppo_clip_result;

/* PPO-clip loss and its gradient with respect to logp, PyTorch's conventions at
 * the kinks (max/min ties split the gradient in halves, clamp passes it on its
 * inclusive range).
 * logp[B,T], mask[B,T], advantages[B]; the reference either ref_logp[B,T] or,
 * for PPO_RATIO_SEQUENCE_MEAN only, ref_seq[B] (per-sequence mean log-probs;
 * pass NULL for the other) -> grad[B,T] (overwritten; 0 where masked), *res.
 * O1P_EVALUE when a valid logp / ref_logp entry is not finite (res->bad_*),
 * O1P_ENOMEM when scratch memory cannot be had. */
int ppo_clip_loss_forward_backward(const ppo_clip_config *cfg, o1p_int B, o1p_int T,
                                   const float *logp, const float *ref_logp, const double *ref_seq,
                                   const double *advantages, const uint8_t *mask, float *grad,
                                   ppo_clip_result *res);

#endif /* O1P_PPO_H */
