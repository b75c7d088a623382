/* logprob.h: token log-probabilities, entropies and their gradient from
 * materialised logits, z = logits / temperature, p = softmax(z) per row.
 * The forward reads each row once (online max and sums); only O(N) statistics
 * are written, and the backward recomputes p from the saved log-sum-exp.
 *
 * Rows whose target equals ignore_index are skipped: logp = entropy = lse = 0
 * and their gradient is 0. Entries of -inf (a masked vocabulary) have p = 0:
 * they add nothing to the entropy and get exactly 0 gradient. A row whose
 * target logit is -inf has logp = -inf (its other outputs are finite).
 */
#ifndef O1P_LOGPROB_H
#define O1P_LOGPROB_H

#include "o1p.h"

/* logits[N,V], targets[N] in [0,V) or ignore_index -> logp[N], entropy[N],
 * lse[N] (overwritten):
 *   lse = log sum_j exp z_j,  logp = z_t - lse,  entropy = lse - sum_j p_j z_j.
 * temperature > 0 with 1/temperature a normal float.
 * O1P_EVALUE if a non-ignored row is all -inf, contains NaN or +inf, or its
 * z overflows float32; O1P_EINDEX if a target is out of range. On error
 * *bad_row (may be NULL) receives the first offending row and the outputs
 * are unspecified. */
int logprob_forward(o1p_int N, o1p_int V, const float *logits, const int64_t *targets,
                    int64_t ignore_index, double temperature, float *logp, float *entropy,
                    float *lse, o1p_int *bad_row);

/* Gradient of sum_i grad_logp[i] logp[i] + grad_entropy[i] entropy[i]:
 * logits[N,V], targets[N], lse[N] from logprob_forward, grad_logp[N],
 * grad_entropy[N] or NULL (zero) -> dlogits[N,V] (overwritten, or added to
 * when `accumulate`; ignored rows are then left as they are):
 *   dlogits_ij = (g_i (1[j = t_i] - p_ij) - h_i p_ij (z_ij - E_p[z_i])) / temperature
 * with p_ij = exp(z_ij - lse_i), normalised by its sum when the rounding of
 * the float lse leaves that measurably off 1. Rows with h_i != 0 take two
 * passes (E_p[z] first); the others one.
 * O1P_EVALUE if a non-ignored row's sum_j exp(z_ij - lse_i) is not within
 * rounding of 1 (NaN/+inf logits, all -inf row, or an lse that does not belong
 * to these logits and temperature); O1P_EINDEX if a target is out of range.
 * On error *bad_row (may be NULL) receives the first offending row, and
 * dlogits holds a partial result (rows are done in parallel).
 * Accumulating costs one more pass over a row only where the rounding of
 * lse makes the renormalisation needed (large |lse|, no entropy gradient). */
int logprob_backward(o1p_int N, o1p_int V, const float *logits, const int64_t *targets,
                     int64_t ignore_index, double temperature, const float *lse,
                     const float *grad_logp, const float *grad_entropy, float *dlogits,
                     int accumulate, o1p_int *bad_row);

#endif /* O1P_LOGPROB_H */
