/* lanes.h: the one lane-accumulator idiom of the kernels.
 *
 * A reduction over a row runs in W independent accumulators: lane k adds
 * element j + k of every full group of W elements,
 *
 *     float acc[O1P_LANES];                 (each set to the identity)
 *     o1p_int j = 0;
 *     O1P_LANE_GROUPS(j, n, O1P_LANES)
 *         for (int k = 0; k < O1P_LANES; k++) acc[k] += f(x[j + k]);
 *     for (; j < n; j++) acc[0] += f(x[j]);  (the tail goes to lane 0)
 *     double s = o1p_lanes_sum(acc);        (lanes combined in order, in double)
 *
 * The loop over k is element-wise, so every target clone vectorises it at its
 * own width without reassociating any sum (strict IEEE forbids vectorising a
 * plain serial reduction), and the order of every addition is fixed by the
 * code: results do not depend on the thread count or the vector width.
 *
 * Widths: O1P_LANES = 32 floats (two AVX-512 or four AVX2 registers; with 16,
 * GCC unrolls the lane loop completely and then fails to vectorise it), used
 * by logprob.c and fused.c; O1P_LANES_F64 = 64 lanes, used by ppo.c (doubles
 * for the sequence sums; floats within a block, then doubles, for the token
 * loop), whose row loop takes the tail of a row (< 64 tokens) as one more
 * group in lanes 0..r-1 instead of lane 0. Changing a width or a tail rule changes the
 * rounding of every result (bit-identical results are tested across thread
 * counts, not across such changes).
 */
#ifndef O1P_LANES_H
#define O1P_LANES_H

#include "o1p.h"

#define O1P_LANES 32
#define O1P_LANES_F64 64

/* for (; j + W <= n; j += W): the full groups of W elements from j on. */
#define O1P_LANE_GROUPS(j, n, W) for (; (j) + (W) <= (n); (j) += (W))

/* Sum of the O1P_LANES float lanes, in lane order, in double. */
O1P_INLINE double o1p_lanes_sum(const float *a) {
    double s = 0.0;
    for (int k = 0; k < O1P_LANES; k++) s += (double)a[k];
    return s;
}

/* Sum of `w` double lanes, in lane order. */
O1P_INLINE double o1p_lanes_sum_f64(const double *a, int w) {
    double s = 0.0;
    for (int k = 0; k < w; k++) s += a[k];
    return s;
}

/* Sum of the O1P_LANES float lanes in float, from lane 0 (for NaN flags). */
O1P_INLINE float o1p_lanes_sum_f32(const float *a) {
    float s = a[0];
    for (int k = 1; k < O1P_LANES; k++) s += a[k];
    return s;
}

/* Largest of the O1P_LANES float lanes (NaN lanes are skipped after lane 0). */
O1P_INLINE float o1p_lanes_max(const float *a) {
    float m = a[0];
    for (int k = 1; k < O1P_LANES; k++) m = a[k] > m ? a[k] : m;
    return m;
}

#endif /* O1P_LANES_H */
