/* ppo.c: per-sequence log-probs and the PPO-clip objective (see ppo.h).
 * One parallel loop over sequences; each row keeps its own partial sums,
 * which are then added in row order, so results are identical for any thread
 * count. */
#include "ppo.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "lanes.h"
#include "vmath.h"

/* Sums over a row run in O1P_LANES_F64 independent double accumulators
 * (lanes.h), one per position inside a chunk of that many tokens:
 * acc[j] += v[t0 + j], the last chunk of a row in lanes 0..r-1. */
/* Tokens worth one thread (a token costs ~1 ns). */
#define MIN_WORK_PER_THREAD 16384

/* ---- row helpers ----------------------------------------------------------- */

/* Number of valid tokens of one row (integer sum: vectorises as is). Any
 * nonzero byte is valid, as everywhere a mask is read: a bool array viewed as
 * bytes may hold values other than 0/1 (NumPy reads them as True). */
O1P_TARGET_CLONES
static int64_t count_valid(o1p_int T, const uint8_t *m) {
    int64_t n = 0;
    for (o1p_int t = 0; t < T; t++) n += m[t] != 0;
    return n;
}

/* Sum of x over the valid tokens of one row, in double. Masked entries are
 * selected away (not multiplied by 0), so NaN there does not leak in. */
O1P_TARGET_CLONES
static double masked_sum(o1p_int T, const float *O1P_RESTRICT x, const uint8_t *O1P_RESTRICT m) {
    double acc[O1P_LANES_F64] = {0};
    for (o1p_int t0 = 0; t0 < T; t0 += O1P_LANES_F64) {
        int n = (int)O1P_MIN((o1p_int)O1P_LANES_F64, T - t0);
        for (int j = 0; j < n; j++) {
            float v = x[t0 + j]; /* loaded unconditionally, then selected */
            acc[j] += (double)(m[t0 + j] ? v : 0.0f);
        }
    }
    return o1p_lanes_sum_f64(acc, O1P_LANES_F64);
}

/* One read of a row for the sequence ratio: the number of valid tokens
 * (*n_out) and the sums over them of lp (returned) and of ref (*sref; not
 * read when ref is NULL), in O1P_LANES_F64 double lanes, the row tail in lanes
 * 0..r-1: the same additions in the same order as masked_sum, so the mean
 * of ref here is bit for bit sequence_logprobs(ref, mask, "mean") (a
 * reference given as per-sequence means gives the same loss). Double and not
 * float lanes: the sequence ratio is exp(mean(lp) - mean(ref)), a difference
 * of two means that may be 1e4 times smaller than either, so a float sum's
 * ~1e-7 relative error would reach the ratio magnified; and a sum of finite
 * floats in double cannot overflow (a non-finite sum means a non-finite valid
 * entry). Masked entries are selected away (NaN there is allowed). */
O1P_INLINE double row_sequence_sums_body(o1p_int T, const float *O1P_RESTRICT lp,
                                         const float *O1P_RESTRICT ref, const uint8_t *O1P_RESTRICT m,
                                         double *sref, int64_t *n_out) {
    double acc[O1P_LANES_F64] = {0}, accr[O1P_LANES_F64] = {0}, cnt[O1P_LANES_F64] = {0};
    /* the chunk width is a run-time value (the last chunk of a row is
     * shorter): a constant 64 lets GCC unroll the lane loop fully and then not
     * vectorise it */
    if (ref) {
        for (o1p_int t0 = 0; t0 < T; t0 += O1P_LANES_F64) {
            int w = (int)O1P_MIN((o1p_int)O1P_LANES_F64, T - t0);
            for (int j = 0; j < w; j++) {
                acc[j] += (double)(m[t0 + j] ? lp[t0 + j] : 0.0f);
                accr[j] += (double)(m[t0 + j] ? ref[t0 + j] : 0.0f);
                cnt[j] += m[t0 + j] ? 1.0 : 0.0;
            }
        }
        *sref = o1p_lanes_sum_f64(accr, O1P_LANES_F64);
    } else {
        for (o1p_int t0 = 0; t0 < T; t0 += O1P_LANES_F64) {
            int w = (int)O1P_MIN((o1p_int)O1P_LANES_F64, T - t0);
            for (int j = 0; j < w; j++) {
                acc[j] += (double)(m[t0 + j] ? lp[t0 + j] : 0.0f);
                cnt[j] += m[t0 + j] ? 1.0 : 0.0;
            }
        }
        *sref = 0.0;
    }
    *n_out = (int64_t)o1p_lanes_sum_f64(cnt, O1P_LANES_F64);
    return o1p_lanes_sum_f64(acc, O1P_LANES_F64);
}

O1P_DISPATCHED(double, row_sequence_sums, (o1p_int T, const float *lp, const float *ref, const uint8_t *m,
                                           double *sref, int64_t *n_out), (T, lp, ref, m, sref, n_out))

/* out[t] = mask ? v : 0 */
O1P_TARGET_CLONES
static void fill_masked(o1p_int T, const uint8_t *m, float v, float *out) {
    for (o1p_int t = 0; t < T; t++) out[t] = m[t] ? v : 0.0f;
}

/* ---- sequence log-probs ------------------------------------------------------ */

int ppo_sequence_logprobs_forward(o1p_int B, o1p_int T, const float *logp, const uint8_t *mask,
                                  int reduce, double *out, o1p_int *bad) {
    int nt = o1p_threads_for(B * T, MIN_WORK_PER_THREAD);
    (void)nt;
    O1P_OMP(parallel for num_threads(nt) schedule(static))
    for (o1p_int b = 0; b < B; b++) {
        const float *x = logp + b * T;
        const uint8_t *m = mask + b * T;
        double s = masked_sum(T, x, m);
        if (reduce == PPO_REDUCE_MEAN) {
            int64_t n = count_valid(T, m);
            s = n > 0 ? s / (double)n : 0.0;
        }
        out[b] = s;
    }
    /* A sum of finite floats in double cannot overflow, so a NaN or +inf row
     * result means a NaN or +inf entry (or -inf meeting +inf): find the first. */
    for (o1p_int b = 0; b < B; b++) {
        if (!(isnan(out[b]) || out[b] == INFINITY)) continue;
        const float *x = logp + b * T;
        const uint8_t *m = mask + b * T;
        for (o1p_int t = 0; t < T; t++) {
            if (m[t] && (isnan(x[t]) || x[t] == INFINITY)) {
                *bad = b * T + t;
                return O1P_EVALUE;
            }
        }
    }
    return O1P_OK;
}

void ppo_sequence_logprobs_backward(o1p_int B, o1p_int T, const double *grad, const uint8_t *mask,
                                    int reduce, float *out) {
    int nt = o1p_threads_for(B * T, MIN_WORK_PER_THREAD);
    (void)nt;
    O1P_OMP(parallel for num_threads(nt) schedule(static))
    for (o1p_int b = 0; b < B; b++) {
        const uint8_t *m = mask + b * T;
        double g = grad[b];
        if (reduce == PPO_REDUCE_MEAN) {
            int64_t n = count_valid(T, m);
            g = n > 0 ? g / (double)n : 0.0;
        }
        fill_masked(T, m, (float)g, out + b * T);
    }
}

/* ---- PPO-clip ------------------------------------------------------------------ */

/* Partial results of one row. */
typedef struct {
    double loss;  /* sum of token losses (token ratio) or the sequence loss */
    double scale; /* weight of `loss` in the aggregate */
    double kl, rsum, rmin, rmax;
    int64_t n, nclip, ndual, nbad;
} row_stats;

/* Row modes, fixed per row because the advantage is per sequence: the compiler
 * specialises the token loop for each. */
enum { MODE_PLAIN = 0, MODE_DUAL = 1, MODE_ZERO_ADV = 2 };

/* One token of the clipped objective, float32 as PyTorch computes it:
 *   x = logp - ref, xc = clamp(x, -c, c), r = exp(xc),
 *   l = max(-A r, -A clamp(r, lo, hi)), and with dual clip (A < 0)
 *   l = min(l, -A c3) = min(l, p3).
 * Gradient rules of PyTorch: max/min give the larger/smaller side the whole
 * gradient and half to each side of a tie; clamp passes it on [lo, hi]. So
 * d l / d r = -A w with w = w1 + (1 - w1) * pass2 (times the dual-clip share),
 * d l / d x = -A w r gx. `snA` = -A times the row's aggregation weight.
 * Where no branch passes the gradient it is exactly 0 (PyTorch's exp backward
 * would give 0 * inf = NaN for an overflowed ratio). Zero-advantage rows give
 * loss and gradient 0 (no 0 * inf either). Branch-free (& not &&, selects
 * not ifs) so that the lane loop vectorises it; `mode` is a constant there. */
typedef struct {
    float l, xc, r, g;   /* loss, clamped log-ratio, ratio, weighted d loss / d logp */
    int clip, dual;      /* clipped branch strictly larger, dual clip active */
} token_terms;

O1P_INLINE token_terms token_eval(float lpv, float refv, float nA, float snA, float p3, float lo, float hi,
                                  float c, const int mode) {
    token_terms o;
    float x = lpv - refv;
    float xc = x < -c ? -c : x;
    xc = xc > c ? c : xc;
    float gx = (float)((x >= -c) & (x <= c));
    float r = o1p_expf(xc);
    float rc = r < lo ? lo : r;
    rc = rc > hi ? hi : rc;
    float pass2 = (float)((r >= lo) & (r <= hi));
    float p1 = nA * r, p2 = nA * rc;
    float w1 = p1 > p2 ? 1.0f : (p1 == p2 ? 0.5f : 0.0f);
    float l = p1 > p2 ? p1 : p2;
    float w = w1 + (1.0f - w1) * pass2;
    o.dual = 0;
    if (mode == MODE_DUAL) {
        float wl = l < p3 ? 1.0f : (l == p3 ? 0.5f : 0.0f);
        o.dual = l > p3;
        l = l < p3 ? l : p3;
        w *= wl;
    }
    if (mode == MODE_ZERO_ADV) {
        l = 0.0f;
        w = 0.0f;
    }
    float d = w * gx;
    o.g = d != 0.0f ? snA * d * r : 0.0f;
    o.l = l;
    o.xc = xc;
    o.r = r;
    o.clip = p2 > p1;
    return o;
}

/* Chunks of O1P_LANES_F64 tokens per block: the float lane sums of a block
 * are added to the row's double lanes at its end. */
#define TOKEN_BLOCK_CHUNKS 16

/* The token-ratio terms of one row in one pass: g written, the sums in
 * O1P_LANES_F64 lanes (token t0 + j of every chunk in lane j, the row tail in
 * lanes 0..r-1). Float lanes within a block of TOKEN_BLOCK_CHUNKS chunks,
 * then added to double lanes: the token values are float32 with ~3e-7
 * relative error each and a float lane adds only 16 of them per block, which
 * keeps a block's error at that order (for the log-ratio sum of mixed signs,
 * ~1e-7 of the sum of |terms|); double across blocks, where a row's sum has
 * no such bound. The counters are exact integers. A block whose float sums
 * are not finite (ratios near FLT_MAX without a log-ratio clamp, or a
 * non-finite valid input, which always makes the lane sum of lp - ref
 * non-finite) is summed again token by token in double: the same terms, no
 * float overflow, and the non-finite inputs counted. Every addition has a
 * fixed place, so results are the same for every thread count and vector
 * width. */
O1P_INLINE void token_row_inner(o1p_int T, const float *O1P_RESTRICT lp,
                               const float *O1P_RESTRICT ref, const uint8_t *O1P_RESTRICT m,
                               float nA, float snA, float p3, float lo, float hi, float c,
                               const int mode, float *O1P_RESTRICT g, row_stats *st) {
    double dl[O1P_LANES_F64] = {0}, dk[O1P_LANES_F64] = {0}, dr[O1P_LANES_F64] = {0};
    float fl[O1P_LANES_F64], fk[O1P_LANES_F64], fr[O1P_LANES_F64], fx[O1P_LANES_F64];
    float mn[O1P_LANES_F64], mx[O1P_LANES_F64];
    int32_t ncl[O1P_LANES_F64] = {0}, ndu[O1P_LANES_F64] = {0}, nbad[O1P_LANES_F64] = {0};
    for (int j = 0; j < O1P_LANES_F64; j++) {
        mn[j] = INFINITY;
        mx[j] = -INFINITY;
    }
    int64_t ncl_row = 0, ndu_row = 0, nbad_row = 0;
    const o1p_int block = (o1p_int)O1P_LANES_F64 * TOKEN_BLOCK_CHUNKS;
    for (o1p_int b0 = 0; b0 < T; b0 += block) {
        o1p_int bend = O1P_MIN(b0 + block, T);
        for (int j = 0; j < O1P_LANES_F64; j++) fl[j] = fk[j] = fr[j] = fx[j] = 0.0f;
        for (o1p_int t0 = b0; t0 < bend; t0 += O1P_LANES_F64) {
            int n = (int)O1P_MIN((o1p_int)O1P_LANES_F64, bend - t0);
            for (int j = 0; j < n; j++) {
                o1p_int t = t0 + j;
                token_terms o = token_eval(lp[t], ref[t], nA, snA, p3, lo, hi, c, mode);
                int valid = m[t] != 0;
                g[t] = valid ? o.g : 0.0f;
                fl[j] += valid ? o.l : 0.0f;
                fk[j] += valid ? -o.xc : 0.0f;
                fr[j] += valid ? o.r : 0.0f;
                fx[j] += valid ? lp[t] - ref[t] : 0.0f; /* non-finite when an input is */
                mn[j] = (valid & (o.r < mn[j])) ? o.r : mn[j];
                mx[j] = (valid & (o.r > mx[j])) ? o.r : mx[j];
                ncl[j] += valid & o.clip;
                ndu[j] += valid & o.dual;
            }
        }
        float fin = 0.0f; /* 0 when every lane sum is finite, else NaN */
        for (int j = 0; j < O1P_LANES_F64; j++)
            fin += (fl[j] - fl[j]) + (fk[j] - fk[j]) + (fr[j] - fr[j]) + (fx[j] - fx[j]);
        if (O1P_LIKELY(fin == 0.0f)) {
            for (int j = 0; j < O1P_LANES_F64; j++) {
                dl[j] += (double)fl[j];
                dk[j] += (double)fk[j];
                dr[j] += (double)fr[j];
            }
        } else {
            /* the rare block: overflowed float sums or a non-finite input
             * (counted here, where it costs nothing on the common path) */
            for (o1p_int t = b0; t < bend; t++) {
                int j = (int)((t - b0) % O1P_LANES_F64);
                if (!m[t]) continue;
                nbad[j] += !((fabsf(lp[t]) <= FLT_MAX) & (fabsf(ref[t]) <= FLT_MAX));
                token_terms o = token_eval(lp[t], ref[t], nA, snA, p3, lo, hi, c, mode);
                dl[j] += (double)o.l;
                dk[j] += (double)-o.xc;
                dr[j] += (double)o.r;
            }
        }
        /* int32 lane counters: fold into int64 long before they could overflow */
        if ((b0 / block) % (1 << 16) == (1 << 16) - 1) {
            for (int j = 0; j < O1P_LANES_F64; j++) {
                ncl_row += ncl[j];
                ndu_row += ndu[j];
                nbad_row += nbad[j];
                ncl[j] = ndu[j] = nbad[j] = 0;
            }
        }
    }
    float lo_r = INFINITY, hi_r = -INFINITY;
    for (int j = 0; j < O1P_LANES_F64; j++) {
        lo_r = mn[j] < lo_r ? mn[j] : lo_r;
        hi_r = mx[j] > hi_r ? mx[j] : hi_r;
        ncl_row += ncl[j];
        ndu_row += ndu[j];
        nbad_row += nbad[j];
    }
    st->loss = o1p_lanes_sum_f64(dl, O1P_LANES_F64);
    st->kl = o1p_lanes_sum_f64(dk, O1P_LANES_F64);
    st->rsum = o1p_lanes_sum_f64(dr, O1P_LANES_F64);
    st->rmin = lo_r;
    st->rmax = hi_r;
    st->nclip = ncl_row;
    st->ndual = ndu_row;
    st->nbad = nbad_row;
}

O1P_INLINE int token_row_body(o1p_int T, const float *lp, const float *ref, const uint8_t *m, float nA,
                              float snA, float p3, float lo, float hi, float c, int mode, float *g,
                              row_stats *st) {
    if (mode == MODE_DUAL)
        token_row_inner(T, lp, ref, m, nA, snA, p3, lo, hi, c, MODE_DUAL, g, st);
    else if (mode == MODE_ZERO_ADV)
        token_row_inner(T, lp, ref, m, nA, snA, p3, lo, hi, c, MODE_ZERO_ADV, g, st);
    else
        token_row_inner(T, lp, ref, m, nA, snA, p3, lo, hi, c, MODE_PLAIN, g, st);
    return 0;
}

O1P_DISPATCHED(int, token_row, (o1p_int T, const float *lp, const float *ref, const uint8_t *m, float nA,
                      float snA, float p3, float lo, float hi, float c, int mode, float *g,
                      row_stats *st), (T, lp, ref, m, nA, snA, p3, lo, hi, c, mode, g, st))

/* Weight of row b's summed token loss in the aggregate. */
static double token_scale(int aggregate, o1p_int B, o1p_int T, int64_t n_b, int64_t N) {
    switch (aggregate) {
    case PPO_AGG_TOKEN_MEAN: return N > 0 ? 1.0 / (double)N : 0.0;
    case PPO_AGG_SEQ_MEAN_TOKEN_MEAN: return 1.0 / ((double)B * (double)(n_b > 0 ? n_b : 1));
    case PPO_AGG_SEQ_MEAN_TOKEN_SUM: return 1.0 / (double)B;
    case PPO_AGG_DR_GRPO: return 1.0 / ((double)B * (double)T);
    default: return 0.0;
    }
}

/* The sequence-level objective of one row in double (same rules as token_row_body
 * with d = mean_lp - mean_ref in place of x). Returns the loss; *dl_dd is
 * d loss / d d (0 where no branch passes the gradient). */
static double sequence_elem(double d, double A, double lo, double hi, double c, double c3,
                            double *dl_dd, double *r_out, double *dc_out, int *clipped,
                            int *dclipped) {
    double dc = d < -c ? -c : (d > c ? c : d);
    double gd = (d >= -c && d <= c) ? 1.0 : 0.0;
    double r = exp(dc);
    double rc = r < lo ? lo : (r > hi ? hi : r);
    double pass2 = (r >= lo && r <= hi) ? 1.0 : 0.0;
    double p1 = -A * r, p2 = -A * rc;
    double w1 = p1 > p2 ? 1.0 : (p1 == p2 ? 0.5 : 0.0);
    double l = p1 > p2 ? p1 : p2;
    double w = w1 + (1.0 - w1) * pass2;
    *clipped = p2 > p1;
    *dclipped = 0;
    if (c3 > 0 && A < 0) {
        double p3 = -A * c3;
        double wl = l < p3 ? 1.0 : (l == p3 ? 0.5 : 0.0);
        *dclipped = l > p3;
        l = l < p3 ? l : p3;
        w *= wl;
    }
    if (A == 0) {
        l = 0.0;
        w = 0.0;
    }
    *dl_dd = w * gd != 0.0 ? -A * w * gd * r : 0.0;
    *r_out = r;
    *dc_out = dc;
    return l;
}

int ppo_clip_loss_forward_backward(const ppo_clip_config *cfg, o1p_int B, o1p_int T,
                                   const float *logp, const float *ref_logp, const double *ref_seq,
                                   const double *advantages, const uint8_t *mask, float *grad,
                                   ppo_clip_result *res) {
    row_stats *rows = (row_stats *)calloc((size_t)(B > 0 ? B : 1), sizeof(row_stats));
    if (rows == NULL) return O1P_ENOMEM;
    int nt = o1p_threads_for(B * T, MIN_WORK_PER_THREAD);
    (void)nt;
    const int token = cfg->ratio == PPO_RATIO_TOKEN;
    const int agg = cfg->aggregate;
    const int dual = cfg->dual_clip > 0;

    if (token) {
        /* float32 bounds, as PyTorch casts Python scalars to the tensor dtype */
        const float lo = (float)(1.0 - cfg->eps_low), hi = (float)(1.0 + cfg->eps_high);
        const float c = cfg->logratio_clamp > 0 ? (float)cfg->logratio_clamp : INFINITY;
        const float c3 = (float)cfg->dual_clip;
        int64_t N = 0;
        O1P_OMP(parallel num_threads(nt))
        {
            /* valid tokens per row first: the aggregation weights need them */
            O1P_OMP(for schedule(static))
            for (o1p_int b = 0; b < B; b++) rows[b].n = count_valid(T, mask + b * T);
            O1P_OMP(single)
            for (o1p_int b = 0; b < B; b++) N += rows[b].n;
            O1P_OMP(for schedule(static))
            for (o1p_int b = 0; b < B; b++) {
                float A = (float)advantages[b];
                float nA = -A;
                double s = token_scale(agg, B, T, rows[b].n, N);
                int mode = A == 0.0f ? MODE_ZERO_ADV : (dual && A < 0.0f ? MODE_DUAL : MODE_PLAIN);
                rows[b].scale = s;
                token_row(T, logp + b * T, ref_logp + b * T, mask + b * T, nA, (float)(s * (double)nA),
                          nA * c3, lo, hi, c, mode, grad + b * T, &rows[b]);
            }
        }
    } else {
        const double lo = 1.0 - cfg->eps_low, hi = 1.0 + cfg->eps_high;
        const double c = cfg->logratio_clamp > 0 ? cfg->logratio_clamp : INFINITY;
        const double s = agg == PPO_AGG_SUM ? 1.0 : 1.0 / (double)B;
        O1P_OMP(parallel for num_threads(nt) schedule(static))
        for (o1p_int b = 0; b < B; b++) {
            const float *lp = logp + b * T;
            const uint8_t *m = mask + b * T;
            float *g = grad + b * T;
            row_stats *st = &rows[b];
            double sref;
            double slp = row_sequence_sums(T, lp, ref_logp ? ref_logp + b * T : NULL, m, &sref, &st->n);
            st->scale = s;
            if (st->n == 0) { /* padding row: contributes nothing */
                fill_masked(T, m, 0.0f, g);
                continue;
            }
            if (!isfinite(slp) || !isfinite(sref)) { /* a non-finite valid entry */
                st->nbad = 1;
                fill_masked(T, m, 0.0f, g);
                continue;
            }
            /* the public code: sum of token log-probs / number of valid tokens */
            double mlp = slp / (double)st->n;
            double d = mlp - (ref_logp ? sref / (double)st->n : ref_seq[b]);
            double dl_dd, r, dc;
            int clipped, dclipped;
            st->loss = sequence_elem(d, advantages[b], lo, hi, c, dual ? cfg->dual_clip : 0.0,
                                     &dl_dd, &r, &dc, &clipped, &dclipped);
            st->kl = -dc;
            st->rsum = st->rmin = st->rmax = r;
            st->nclip = clipped;
            st->ndual = dclipped;
            /* d mean_lp / d logp[b,t] = 1 / n_b on valid tokens */
            fill_masked(T, m, (float)(s * dl_dd / (double)st->n), g);
        }
    }

    /* reduce in row order (independent of the thread count) */
    double loss = 0, kl = 0, rsum = 0, rmin = INFINITY, rmax = -INFINITY;
    int64_t count = 0, nclip = 0, ndual = 0;
    for (o1p_int b = 0; b < B; b++) {
        const row_stats *st = &rows[b];
        if (st->nbad) {
            const float *lp = logp + b * T, *rf = ref_logp ? ref_logp + b * T : NULL;
            const uint8_t *m = mask + b * T;
            for (o1p_int t = 0; t < T; t++) {
                if (!m[t]) continue;
                if (!isfinite(lp[t]) || (rf && !isfinite(rf[t]))) {
                    res->bad_index = b * T + t;
                    res->bad_which = isfinite(lp[t]) ? 1 : 0;
                    free(rows);
                    return O1P_EVALUE;
                }
            }
        }
        if (st->n == 0) continue;
        loss += st->scale * st->loss;
        kl += st->kl;
        rsum += st->rsum;
        rmin = st->rmin < rmin ? st->rmin : rmin;
        rmax = st->rmax > rmax ? st->rmax : rmax;
        nclip += st->nclip;
        ndual += st->ndual;
        count += token ? st->n : 1;
    }
    free(rows);
    res->loss = loss;
    res->count = count;
    if (count > 0) {
        res->clip_fraction = (double)nclip / (double)count;
        res->dual_clip_fraction = (double)ndual / (double)count;
        res->approx_kl = kl / (double)count;
        res->ratio_mean = rsum / (double)count;
        res->ratio_min = rmin;
        res->ratio_max = rmax;
    } else { /* nothing valid: the ratio of an empty sequence, exp(0) */
        res->clip_fraction = res->dual_clip_fraction = res->approx_kl = 0.0;
        res->ratio_mean = res->ratio_min = res->ratio_max = 1.0;
    }
    return O1P_OK;
}
