/* logprob.c: token log-probs, entropies and their gradient from materialised
 * logits (see logprob.h). Memory-bound by design: the forward reads each row
 * once, in L1-sized blocks (block max, then exp sums from L1), and writes
 * O(N); the backward reads each row once more and writes dlogits.
 *
 * Numerics: z = x * (1/temperature) with the reciprocal rounded to float once
 * (so forward and backward see the same z). Inside a block, sums run in float
 * over O1P_LANES independent partial sums (lanes.h: this is what vectorises
 * without -ffast-math); blocks are combined in double.
 */
/* Let GCC fuse a*b+c into FMA here (the default for GNU C, but -std=c99 turns
 * it off): o1p_expf's polynomial is most of the work and FMAs cut it by a
 * quarter. Every result below is specified up to rounding anyway. Not set
 * project-wide: the rewards kernels reproduce Python's float64 bit for bit. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif

#include "logprob.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "lanes.h"
#include "vmath.h"

/* 2048 floats (8 KiB): a block stays in L1 between its max pass and its exp
 * pass; each of the O1P_LANES partial sums adds 64 values of a full block in
 * float. */
#define LP_BLOCK 2048

/* Software prefetch two blocks ahead into L1, and eight blocks (64 KiB)
 * ahead into L2: the hardware prefetcher brings the row towards L2 but stops
 * at 4 KiB pages, and L1 prefetches alone are limited by the few L1 miss
 * buffers; the L2 prefetch keeps enough lines in flight (one thread reading
 * logits from DRAM: 8.5 -> 11 GB/s, against 15 GB/s for a bare read; 16 or
 * 32 blocks ahead did no better). The block after next reaches L1 while the
 * current one is computed, so the max pass does not wait for memory (-38%
 * time per logit from DRAM on one core; one or four blocks ahead did worse).
 * The address is formed as an integer: prefetching past the end of the row
 * is harmless, pointer arithmetic past it would not be. */
#if defined(__GNUC__) || defined(__clang__)
#define LP_PREFETCH(p, bytes)                                                        \
    (__builtin_prefetch((const void *)((uintptr_t)(p) + (bytes)), 0, 3),             \
     __builtin_prefetch((const void *)((uintptr_t)(p) + 4 * (bytes)), 0, 1))
#else
#define LP_PREFETCH(p, bytes) ((void)0)
#endif
#define LP_PF_BYTES (2 * LP_BLOCK * (uintptr_t)sizeof(float))

/* o1p_expf_nonpos(d) is exactly 0 below this; clamping d here keeps p * d at 0
 * instead of 0 * -inf = NaN for masked (-inf) entries. The value is the
 * exp's own clamp, so the compiler shares the comparison. */
#define LP_DCLAMP -87.3365f

/* Logits per thread below which a second thread does not pay off. */
#define LP_MIN_WORK (1 << 15)

/* ---- forward ------------------------------------------------------------ */

/* Max of x[0..n); NaN entries are skipped (they are caught by the sums). */
O1P_INLINE float block_max(const float *O1P_RESTRICT x, o1p_int n) {
    float lm[O1P_LANES];
    for (int l = 0; l < O1P_LANES; l++) lm[l] = -INFINITY;
    o1p_int j = 0;
    O1P_LANE_GROUPS(j, n, O1P_LANES)
        for (int l = 0; l < O1P_LANES; l++) lm[l] = x[j + l] > lm[l] ? x[j + l] : lm[l];
    for (; j < n; j++) lm[0] = x[j] > lm[0] ? x[j] : lm[0];
    return o1p_lanes_max(lm);
}

O1P_INLINE int block_has_nan(const float *x, o1p_int n) {
    int bad = 0;
    for (o1p_int j = 0; j < n; j++) bad |= x[j] != x[j];
    return bad;
}

/* p = exp(l). In the backward l <= 0 up to rounding when lse matches the
 * logits; the clamp at 88 lets the cheaper exp serve every input and keeps a
 * wrong lse visible as a huge sum p instead of a wrapped exponent. */
O1P_INLINE float exp_le88(float l) { return o1p_expf_nonpos(l > 88.0f ? 88.0f : l); }

/* The same for terms that are only summed (the forward's sums, the entropy
 * pass of the backward): the cheaper exp whose 1.9e-7 relative error is
 * below what a float32 log-sum-exp resolves (vmath.h). The gradient's p
 * itself, written per element, keeps exp_le88. */
O1P_INLINE float sum_exp_le88(float l) { return o1p_expf_fast(l > 88.0f ? 88.0f : l); }

/* Over a block: *s1 += sum p, *s2 += sum p l, with l = (x xs - a) invT (xs a
 * power of two, see row_backward) and p = e^l: the one per-lane sum loop of
 * the forward and the backward. The forward calls it with
 * xs = 1 and a = the block max (l <= 0, so the clamp at 88 never acts: the
 * sums are those of e^d, d e^d with d = (x - m) / T). The shifted l is summed
 * rather than z itself so that the entropy H = log s - sd / s has no
 * cancellation when the logits are large. NaN in x propagates into both sums
 * (that is how a NaN row is detected). */
O1P_INLINE void block_plogp(const float *O1P_RESTRICT x, o1p_int n, float xs, float a_, float invT,
                            double *s1, double *s2) {
    float a[O1P_LANES], b[O1P_LANES];
    for (int k = 0; k < O1P_LANES; k++) a[k] = b[k] = 0.0f;
    o1p_int j = 0;
    O1P_LANE_GROUPS(j, n, O1P_LANES) {
        LP_PREFETCH(x + j, LP_PF_BYTES);
        LP_PREFETCH(x + j + 16, LP_PF_BYTES);
        for (int k = 0; k < O1P_LANES; k++) {
            float l = (x[j + k] * xs - a_) * invT;
            float p = sum_exp_le88(l);
            float lc = l < LP_DCLAMP ? LP_DCLAMP : l;
            a[k] += p;
            b[k] += p * lc;
        }
    }
    for (; j < n; j++) {
        float l = (x[j] * xs - a_) * invT;
        float p = sum_exp_le88(l);
        float lc = l < LP_DCLAMP ? LP_DCLAMP : l;
        a[0] += p;
        b[0] += p * lc;
    }
    *s1 += o1p_lanes_sum(a);
    *s2 += o1p_lanes_sum(b);
}

/* One row in one pass. Running max m (a raw logit) with sums relative to it;
 * when a block raises the max, the sums are rescaled:
 *   s' = c s,  sd' = c (sd + delta s),  c = e^delta,  delta = (m - m') / T.
 * Returns 0, or -1 for a row that is all -inf, holds NaN/+inf, or whose
 * log-sum-exp overflows float32. */
O1P_INLINE int row_forward_body(const float *O1P_RESTRICT x, o1p_int V, int64_t t, float invT, float *logp,
                                float *entropy, float *lse) {
    float m = -INFINITY;
    double s = 0.0, sd = 0.0;
    int nan_seen = 0;
    for (o1p_int b0 = 0; b0 < V; b0 += LP_BLOCK) {
        const float *xb = x + b0;
        o1p_int n = O1P_MIN(LP_BLOCK, V - b0);
        float bm = block_max(xb, n);
        if (bm > m) {
            if (s > 0.0) {
                double delta = ((double)m - (double)bm) * (double)invT;
                double c = exp(delta);
                sd = c * (sd + delta * s);
                s *= c;
            }
            m = bm;
        }
        if (m == -INFINITY) {
            /* nothing but -inf (and maybe NaN) so far: skip, but do not
             * let a NaN go unnoticed */
            nan_seen |= block_has_nan(xb, n);
            continue;
        }
        block_plogp(xb, n, 1.0f, m, invT, &s, &sd); /* x * 1 - m: exactly x - m */
    }
    /* s >= 1 for a valid row: the max contributes e^0 = 1 after the last
     * rescale. NaN/+inf make s or sd NaN; an all -inf row leaves m = -inf. */
    if (nan_seen || !(m > -INFINITY && m < INFINITY) || !(s >= 1.0 && s < INFINITY) ||
        !(sd <= 0.0 && sd > -INFINITY))
        return -1;
    double logs = log(s);
    double l = (double)m * (double)invT + logs;
    if (!(fabs(l) <= (double)FLT_MAX)) return -1;
    *lse = (float)l;
    *logp = (float)(((double)x[t] - (double)m) * (double)invT - logs); /* -inf if x[t] = -inf */
    *entropy = (float)(logs - sd / s); /* both terms >= 0: no cancellation */
    return 0;
}

/* Compiled per SIMD path, chosen at run time (o1p.h: O1P_DISPATCHED). */
O1P_DISPATCHED(int, row_forward, (const float *x, o1p_int V, int64_t t, float invT, float *logp, float *entropy,
                                  float *lse), (x, V, t, invT, logp, entropy, lse))

int logprob_forward(o1p_int N, o1p_int V, const float *logits, const int64_t *targets,
                    int64_t ignore_index, double temperature, float *logp, float *entropy,
                    float *lse, o1p_int *bad_row) {
    const float invT = (float)(1.0 / temperature);
    o1p_int bad = N, bad_index = N;
    int nt = o1p_threads_for(N * V, LP_MIN_WORK);
    (void)nt; /* unused without OpenMP */
    O1P_OMP(parallel for num_threads(nt) schedule(static) reduction(min: bad, bad_index))
    for (o1p_int i = 0; i < N; i++) {
        int64_t t = targets[i];
        logp[i] = entropy[i] = lse[i] = 0.0f;
        if (t == ignore_index) continue;
        if (t < 0 || t >= V) {
            if (i < bad_index) bad_index = i;
            continue;
        }
        if (row_forward(logits + i * V, V, t, invT, &logp[i], &entropy[i], &lse[i]) != 0 && i < bad)
            bad = i;
    }
    if (bad_index < N || bad < N) {
        if (bad_row) *bad_row = O1P_MIN(bad, bad_index);
        return bad_index < bad ? O1P_EINDEX : O1P_EVALUE;
    }
    return O1P_OK;
}

/* ---- backward ----------------------------------------------------------- */

/* The backward forms l = z - lse = log p as (x - a) / T with a = lse * T, the
 * log-sum-exp in logit units: x - a is exact for every entry that matters
 * (those within a factor 2 of a), so l carries no error of size |z| 2^-24, only
 * the rounding of a, which shifts every l of the row alike and is removed by
 * normalising p by its sum. */

/* out = p (A + B l) over a block (the non-target formula; B = 0 without an
 * entropy gradient), or out += p (A + B l) when `acc` (a constant at every
 * call), and *s1 += sum p. */
O1P_INLINE void block_grad(const float *O1P_RESTRICT x, o1p_int n, float xs, float a_, float invT,
                           float A, float B, const int acc, float *O1P_RESTRICT out, double *s1) {
    float a[O1P_LANES];
    for (int k = 0; k < O1P_LANES; k++) a[k] = 0.0f;
    o1p_int j = 0;
    if (B == 0.0f) {
        O1P_LANE_GROUPS(j, n, O1P_LANES) {
            LP_PREFETCH(x + j, LP_PF_BYTES);
            LP_PREFETCH(x + j + 16, LP_PF_BYTES);
            for (int k = 0; k < O1P_LANES; k++) {
                float p = exp_le88((x[j + k] * xs - a_) * invT);
                a[k] += p;
                out[j + k] = (acc ? out[j + k] : 0.0f) + p * A;
            }
        }
    } else {
        O1P_LANE_GROUPS(j, n, O1P_LANES) {
            LP_PREFETCH(x + j, LP_PF_BYTES);
            LP_PREFETCH(x + j + 16, LP_PF_BYTES);
            for (int k = 0; k < O1P_LANES; k++) {
                float l = (x[j + k] * xs - a_) * invT;
                float p = exp_le88(l);
                float lc = l < LP_DCLAMP ? LP_DCLAMP : l;
                a[k] += p;
                out[j + k] = (acc ? out[j + k] : 0.0f) + p * (A + B * lc);
            }
        }
    }
    for (; j < n; j++) {
        float l = (x[j] * xs - a_) * invT;
        float p = exp_le88(l);
        float lc = l < LP_DCLAMP ? LP_DCLAMP : l;
        a[0] += p;
        out[j] = (acc ? out[j] : 0.0f) + p * (A + B * lc);
    }
    *s1 += o1p_lanes_sum(a);
}

/* Largest |log sum_j p_j| accepted as rounding: lse and a are floats, each
 * off by up to |lse| 2^-24, plus exp and summation error; 8x margin. */
static double sum_tolerance(float lse) { return 1e-4 + ldexp(fabs((double)lse), -20); }

/* Above this |log sum p| the one-pass gradient is rescaled by 1 / sum p
 * (a second, cheap pass over the row just written). */
#define LP_RENORM 0x1p-18

/* One row: dz_j = g (1[j=t] - p_j) - h p_j (l_j - E_p[l]), scaled by 1/T
 * (z - E_p[z] = l - E_p[l]: shift-free, small numbers). p is normalised by
 * its sum: in the entropy pass for free, otherwise afterwards if needed.
 * Returns 0, or -1 when sum p is off (bad logits or an lse from elsewhere). */
O1P_INLINE int row_backward_body(const float *O1P_RESTRICT x, o1p_int V, int64_t t, float invT, float lse,
                                 float g, float h, int acc, float *O1P_RESTRICT out) {
    /* a = lse T in logit units. Where that overflows float32 (any lse the
     * forward gives at a temperature above ~1e37, or an lse near
     * FLT_MAX / T), the row is worked at scale 2^-k: l = (x 2^-k - a 2^-k)
     * (invT 2^k), the same number (powers of two are exact), with
     * |a 2^-k| <= FLT_MAX. k = 0 (xs = 1) leaves every result bit for bit. */
    double ad = (double)lse / (double)invT;
    float xs = 1.0f, iT = invT;
    while (fabs(ad) > (double)FLT_MAX) { /* false for NaN: no endless loop */
        ad *= 0.5;
        xs *= 0.5f;
        iT *= 2.0f;
    }
    const float a = (float)ad;
    double c = 0.0, scale = 1.0; /* c = E_p[l] (= -entropy), scale = 1 / sum p */
    if (h != 0.0f) {
        double s1 = 0.0, s2 = 0.0;
        for (o1p_int b0 = 0; b0 < V; b0 += LP_BLOCK)
            block_plogp(x + b0, O1P_MIN(LP_BLOCK, V - b0), xs, a, iT, &s1, &s2);
        if (!(s1 > 0.0 && s1 < INFINITY && isfinite(s2))) return -1;
        c = s2 / s1;
        scale = 1.0 / s1;
    }
    const float A = (float)(((double)h * c - (double)g) * (double)invT * scale);
    const float B = (float)(-(double)h * (double)invT * scale);
    const float out_t = acc ? out[t] : 0.0f; /* the target entry is set last */
    double s1 = 0.0;
    for (o1p_int b0 = 0; b0 < V; b0 += LP_BLOCK) {
        if (acc)
            block_grad(x + b0, O1P_MIN(LP_BLOCK, V - b0), xs, a, iT, A, B, 1, out + b0, &s1);
        else
            block_grad(x + b0, O1P_MIN(LP_BLOCK, V - b0), xs, a, iT, A, B, 0, out + b0, &s1);
    }
    double logsum = log(s1);
    if (!(fabs(logsum) <= sum_tolerance(lse))) return -1;
    if (h == 0.0f && fabs(logsum) > LP_RENORM) {
        scale = 1.0 / s1;
        const float r = (float)scale;
        if (acc) { /* the row's terms were added unscaled: add (r - 1) times them */
            double unused = 0.0;
            for (o1p_int b0 = 0; b0 < V; b0 += LP_BLOCK)
                block_grad(x + b0, O1P_MIN(LP_BLOCK, V - b0), xs, a, iT, A * (r - 1.0f), 0.0f, 1, out + b0,
                           &unused);
        } else {
            for (o1p_int j = 0; j < V; j++) out[j] *= r;
        }
    }
    /* the target entry, with 1 - p_t in double */
    float lt = (x[t] * xs - a) * iT;
    double pt = (double)exp_le88(lt) * scale;
    float ltc = lt < LP_DCLAMP ? LP_DCLAMP : lt;
    out[t] = out_t + (float)(((double)g * (1.0 - pt) - (double)h * pt * ((double)ltc - c)) * (double)invT);
    return 0;
}

O1P_DISPATCHED(int, row_backward, (const float *x, o1p_int V, int64_t t, float invT, float lse, float g, float h,
                                   int acc, float *out), (x, V, t, invT, lse, g, h, acc, out))

int logprob_backward(o1p_int N, o1p_int V, const float *logits, const int64_t *targets,
                     int64_t ignore_index, double temperature, const float *lse,
                     const float *grad_logp, const float *grad_entropy, float *dlogits,
                     int accumulate, o1p_int *bad_row) {
    const float invT = (float)(1.0 / temperature);
    o1p_int bad = N, bad_index = N;
    int nt = o1p_threads_for(N * V, LP_MIN_WORK);
    (void)nt; /* unused without OpenMP */
    O1P_OMP(parallel for num_threads(nt) schedule(static) reduction(min: bad, bad_index))
    for (o1p_int i = 0; i < N; i++) {
        int64_t t = targets[i];
        float *out = dlogits + i * V;
        if (t == ignore_index) {
            if (!accumulate) memset(out, 0, (size_t)V * sizeof(float));
            continue;
        }
        if (t < 0 || t >= V) {
            if (i < bad_index) bad_index = i;
            continue;
        }
        float h = grad_entropy ? grad_entropy[i] : 0.0f;
        if (row_backward(logits + i * V, V, t, invT, lse[i], grad_logp[i], h, accumulate != 0, out) != 0 &&
            i < bad)
            bad = i;
    }
    if (bad_index < N || bad < N) {
        if (bad_row) *bad_row = O1P_MIN(bad, bad_index);
        return bad_index < bad ? O1P_EINDEX : O1P_EVALUE;
    }
    return O1P_OK;
}
