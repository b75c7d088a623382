/* model_ops.h: the building blocks of model.c shared with model_generate.c
 * (not part of the public C contract). Every function here is serial: the
 * callers run them on one contiguous group of sequences per thread.
 *
 * Threading of the model: one parallel region per forward, backward or
 * decoding step instead of one per operation, and one thread pool (OpenMP,
 * BLAS single-threaded inside) instead of OpenMP and OpenBLAS's pthreads
 * fighting over the cores. Training (model.c): the batch is split into
 * contiguous groups of sequences of about equal cost, one per thread, and
 * each thread runs the whole network on its group (its rows of every
 * activation) with no barrier; when the batch cannot be split evenly (e.g.
 * one sequence) the work runs on the calling thread and BLAS uses its own
 * threads. Generation (model_generate.c): the rows of a step are few, so
 * matmuls are split by output columns (each weight packed once per step)
 * and the row-wise work by groups of sequences, with barriers between.
 * Results are deterministic for a given thread count; different counts
 * differ by float rounding (so does OpenBLAS's sgemm).
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

/* y[n,d] = w * x r, r[n] = 1/sqrt(mean(x^2) + eps) per row (rstd may be NULL). */
void model_rmsnorm_rows(o1p_int n, o1p_int d, const float *x, const float *w, float eps, float *y,
                        float *rstd);

/* qkv[n,3d] += bias[3d], then q and k (the first 2d columns) rotated at
 * positions pos[n] (HF rotate_half: pairs (i, i + D/2) within each head). */
void model_bias_rope_rows(o1p_int n, o1p_int d, o1p_int H, float *qkv, const float *bias,
                          const int64_t *pos, const model_rope *rope);

/* act[n,F] = silu(gate) * up with gu[n,2F] = [gate | up]. */
void model_swiglu_rows(o1p_int n, o1p_int F, const float *gu, float *act);

/* Rows of query block processed at once by the attention (the scratch of
 * model_attention_head needs O1P_ATTN_QBLOCK * (start + n) floats). */
#define O1P_ATTN_QBLOCK 64

/* Causal attention of one (sequence, head): n queries at positions
 * start..start+n-1 (q rows, leading dim ldq) over keys/values rows
 * 0..start+n-1 (leading dim ldkv); out rows (ldo) overwritten; lse[n] (may
 * be NULL) receives each query's log-sum-exp of the scaled scores. */
void model_attention_head(o1p_int n, o1p_int start, o1p_int D, const float *q, o1p_int ldq,
                          const float *k, const float *v, o1p_int ldkv, float *out, o1p_int ldo,
                          float *lse, float *scratch);

/* Split sequences 0..nseq (n[b] new tokens at positions start[b].., start
 * may be NULL) into at most nt contiguous groups of about equal cost:
 * cut[0] = 0 < ... < cut[g] = nseq. Returns g, or 1 when splitting would
 * leave a thread mostly idle (then the caller runs serially, BLAS threaded). */
/* Threads worth using for `tokens` rows through the network (>= 1). */
int model_threads_for_tokens(const model_config *c, o1p_int tokens);

int model_partition(const model_config *c, o1p_int nseq, const o1p_int *n, const o1p_int *start,
                    int nt, o1p_int *cut);

#endif /* O1P_MODEL_OPS_H */
