/* rewards.h: O1-Pruner's reference statistics and length-harmonizing reward
 * (method.md steps 1-2), in float64 throughout: these are per-sample scalars,
 * cheap, and must match the public code's Python floats bit for bit. */
#ifndef O1P_REWARDS_H
#define O1P_REWARDS_H

#include "o1p.h"

/* Group codes from arbitrary problem ids.
 * ids[S] -> code[S] in [0, G), uniq[S] (first G entries: the sorted distinct
 * ids, uniq[code[i]] == ids[i]), *G. No accumulation. */
int rewards_group_codes(o1p_int S, const int64_t *ids, int64_t *code, int64_t *uniq, o1p_int *G);

/* Group codes from offsets[G+1] (validated by the caller: 0 = offsets[0] <
 * offsets[1] < ... < offsets[G] = S) -> code[S]. */
void rewards_codes_from_offsets(o1p_int G, const int64_t *offsets, int64_t *code);

/* Per-group mean length, accuracy and count.
 * lengths[S], correct[S], code[S] in [0, G) -> mean_length[G], accuracy[G],
 * count[G] (overwritten). Sums in double, in sample order (exact for integer
 * lengths, as the public code's sum(...)/K; a sum that overflows is redone in
 * units of 2^64). O1P_EVALUE if a group is empty, O1P_ENOMEM. */
int rewards_group_stats(o1p_int S, const double *lengths, const double *correct,
                        const int64_t *code, o1p_int G, double *mean_length, double *accuracy,
                        int64_t *count);

/* R = (Lbar - L) / L + lam * (A - Abar) per sample, arranged as the public
 * code computes it (its length term, then its accuracy term), which equals the
 * paper's Lbar/L - 1 + lam (A - Abar) up to rounding.
 * lengths[S] > 0, correct[S], ref_mean_length[S], ref_accuracy[S] -> out[S]. */
void rewards_length_harmonizing(o1p_int S, const double *lengths, const double *correct,
                                const double *ref_mean_length, const double *ref_accuracy,
                                double lam, double *out);

enum { REWARDS_NORM_NONE = 0, REWARDS_NORM_DATASET = 1, REWARDS_NORM_GROUP = 2 };

/* Clip then z-normalise, as the public code: w <= lo -> lo, w > hi -> hi
 * (skipped when do_clip is 0); then (w - mean) / std with std over the whole
 * set (REWARDS_NORM_DATASET) or each group (REWARDS_NORM_GROUP, needs code[S]
 * in [0, G)), ddof 0. A set with zero spread maps to 0.
 * w[S] -> out[S] (may alias w). O1P_ENOMEM on allocation failure. */
int rewards_harmonize(o1p_int S, const double *w, int do_clip, double lo, double hi,
                      int normalize, const int64_t *code, o1p_int G, double *out);

#endif /* O1P_REWARDS_H */
