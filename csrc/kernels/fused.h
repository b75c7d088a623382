/* fused.h: fused LM head + token log-probs. Logits z = (hidden W^T + bias) /
 * temperature are computed tile by tile (tokens x vocabulary) with sgemm and
 * reduced on the fly, so the N x V logits are never stored: memory O(N) plus a
 * few tile buffers. Same results as token_logprobs on the materialised logits.
 *
 * Per-token statistics kept for the backward: lse[N] (log-sum-exp of z) and
 * entropy[N] (H = lse - E_p[z]); together they give p = exp(z - lse) and
 * E_p[z] = lse - H when the backward recomputes a tile.
 * Rows whose target equals ignore_index are skipped: logp = entropy = lse = 0
 * and they receive no gradient.
 */
#ifndef O1P_FUSED_H
#define O1P_FUSED_H

#include "o1p.h"

/* hidden[N,d], weight[V,d], bias[V] or NULL, targets[N] in [0,V) or
 * ignore_index -> logp[N], entropy[N], lse[N] (overwritten).
 * O1P_EVALUE if a row's logits are all -inf or contain NaN/+inf;
 * O1P_ENOMEM if a tile buffer cannot be allocated. */
int fused_logprobs_forward(o1p_int N, o1p_int d, o1p_int V, const float *hidden,
                           const float *weight, const float *bias, const int64_t *targets,
                           int64_t ignore_index, float temperature, float *logp, float *entropy,
                           float *lse);

/* Gradients of sum_i (grad_logp[i] logp[i] + grad_entropy[i] entropy[i]).
 * lse[N], entropy[N] from the forward; grad_entropy may be NULL (zero).
 * ACCUMULATES into grad_hidden[N,d] (required), grad_weight[V,d] and
 * grad_bias[V] (each may be NULL: not computed).
 * O1P_EVALUE if the logits contain NaN/inf or if lse does not belong to these
 * inputs (sum_j exp(z_j - lse) of a row is not 1 within 1%): the outputs may
 * then hold part of the gradient. O1P_ENOMEM as for the forward. */
int fused_logprobs_backward(o1p_int N, o1p_int d, o1p_int V, const float *hidden,
                            const float *weight, const float *bias, const int64_t *targets,
                            int64_t ignore_index, float temperature, const float *lse,
                            const float *entropy, const float *grad_logp,
                            const float *grad_entropy, float *grad_hidden, float *grad_weight,
                            float *grad_bias);

#endif /* O1P_FUSED_H */
