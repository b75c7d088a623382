/* model_ops.h: the building blocks of model.c shared with model_generate.c
 * (not part of the public C contract). Rows are tokens of a packed batch; all
 * loops over rows run on our OpenMP threads, every sgemm is left to BLAS.
 */
#ifndef O1P_MODEL_OPS_H
#define O1P_MODEL_OPS_H

#include "model.h"

/* Rotary tables for positions 0..n_pos-1: cos/sin[n_pos, D/2], angle
 * pos * theta^(-2i/D) computed in float32 as Hugging Face does. */
typedef struct {
    o1p_int n_pos, half;
    float *cos, *sin;
} model_rope;

int model_rope_init(model_rope *r, o1p_int n_pos, o1p_int D, float theta);
void model_rope_free(model_rope *r);

/* y[N,d] = w * x r, r[N] = 1/sqrt(mean(x^2) + eps) per row (rstd may be NULL).
 * y may alias x. */
void model_rmsnorm_forward(o1p_int N, o1p_int d, const float *x, const float *w, float eps,
                           float *y, float *rstd);

/* qkv[N,3d] += bias[3d], then q and k (the first 2d columns) rotated at
 * positions pos[N] (HF rotate_half: pairs (i, i + D/2) within each head). */
void model_bias_rope_forward(o1p_int N, o1p_int d, o1p_int H, float *qkv, const float *bias,
                             const int64_t *pos, const model_rope *rope);

/* act[N,F] = silu(gate) * up with gu[N,2F] = [gate | up]. */
void model_swiglu_forward(o1p_int N, o1p_int F, const float *gu, float *act);

/* Causal attention for nseq sequences. Sequence b has nq[b] query rows at
 * q rows qrow0[b].. (leading dim ldq), at absolute positions start[b]..
 * (start NULL: 0), attending keys/values rows krow0[b] .. krow0[b] +
 * start[b] + nq[b] - 1 of k and v (leading dim ldkv). Head h uses columns
 * h*D..h*D+D of q, k, v and out. out rows are the query rows (ldo).
 * lse (may be NULL) receives each query's log-sum-exp of scaled scores at
 * lse[h * lse_stride + qrow]. O1P_ENOMEM if scratch cannot be allocated. */
int model_attention_forward(o1p_int nseq, const o1p_int *qrow0, const o1p_int *nq,
                            const o1p_int *start, const o1p_int *krow0, o1p_int H, o1p_int D,
                            const float *q, o1p_int ldq, const float *k, const float *v,
                            o1p_int ldkv, float *out, o1p_int ldo, float *lse,
                            o1p_int lse_stride);

#endif /* O1P_MODEL_OPS_H */
