/* vmath.h: branch-free float math that GCC vectorises inside loops (libm's
 * expf is a call per element, ~10x slower). Pure C99 plus memcpy bit casts;
 * needs -fno-trapping-math so the clamps become vector min/max.
 */
#ifndef O1P_VMATH_H
#define O1P_VMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "o1p.h"

O1P_INLINE float o1p_bits_to_float(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

O1P_INLINE uint32_t o1p_float_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* exp(x) in float32, max relative error ~2 ulp (Cephes' polynomial on a
 * Cody-Waite reduced argument).
 *   x < -87.3365 (incl. -inf) -> 0   (the true value is below FLT_MIN: flushed)
 *   x >  88.7228 (incl. +inf) -> +inf
 *   NaN -> NaN
 * Arranged for vectorisation: round-to-nearest by the 1.5*2^23 trick (no
 * float->int conversion, so no UB on NaN), and 2^n applied as two normal
 * powers 2^(n/2) 2^(n-n/2), which keeps n = 128 and n = -126 exact. */
O1P_INLINE float o1p_expf(float x) {
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    const float shifter = 12582912.0f; /* 1.5 * 2^23 */
    float xc = x > 88.7228f ? 88.7228f : x;
    xc = xc < -87.3365f ? -87.3365f : xc;
    float t = xc * log2e + shifter;
    float n = t - shifter; /* round(xc / ln2) as a float */
    /* the integer n from the low mantissa bits of t (wraps harmlessly on NaN) */
    int32_t ni = (int32_t)(o1p_float_to_bits(t) - o1p_float_to_bits(shifter));
    float r = xc - n * ln2_hi;
    r = r - n * ln2_lo;
    float r2 = r * r;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r2 + r + 1.0f;
    int32_t n1 = ni >> 1, n2 = ni - n1;
    float s1 = o1p_bits_to_float((uint32_t)(n1 + 127) << 23);
    float s2 = o1p_bits_to_float((uint32_t)(n2 + 127) << 23);
    float y = p * s1 * s2;
    y = x < -87.3365f ? 0.0f : y;
    y = x > 88.7228f ? INFINITY : y;
    return y;
}

/* exp(x) for x <= 0 (incl. -inf; NaN -> NaN), the softmax case exp(z - max):
 * the same polynomial as o1p_expf with fewer operations, since n = round(x /
 * ln2) lies in [-126, 0] and 2^n is a single normal power (no overflow case).
 *   x < -87.3365 (incl. -inf) -> 0
 * Bit for bit equal to o1p_expf for every x <= 88 (checked exhaustively), so
 * positive x from rounding is fine; x > 88.7 is not handled (the exponent
 * wraps): clamp first or use o1p_expf. */
O1P_INLINE float o1p_expf_nonpos(float x) {
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    const float shifter = 12582912.0f; /* 1.5 * 2^23 */
    float xc = x < -87.3365f ? -87.3365f : x;
    float t = xc * log2e + shifter;
    float n = t - shifter;
    float r = xc - n * ln2_hi;
    r = r - n * ln2_lo;
    float r2 = r * r;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r2 + r + 1.0f;
    /* 2^n: the low mantissa bits of t hold n; (n + 127) << 23 in unsigned
     * arithmetic (the bits above the exponent field fall off) */
    uint32_t e = (o1p_float_to_bits(t) - o1p_float_to_bits(shifter) + 127u) << 23;
    float y = p * o1p_bits_to_float(e);
    return x < -87.3365f ? 0.0f : y;
}

/* exp(x) for softmax sums: x <= 0 up to rounding (at most 88: clamp larger
 * values first, the exponent would wrap; up to 88 it stays accurate), x < -87.3365 (incl. -inf) -> 0,
 * NaN -> NaN. The reduction of o1p_expf_nonpos with a degree-5 polynomial
 * (a relative-error minimax fit with p(0) = 1 exactly, so the row maximum
 * contributes exactly 1) instead of Cephes' degree 7: two multiply-adds
 * fewer per element. Max relative error 1.9e-7 over every float in
 * [-87.3365, 0] (1.64e-7 without FMA contraction, 1.85e-7 with it; checked
 * exhaustively against double exp; tests/test_logprobs.py checks a dense grid
 * through _core._expf_fast). A sum of such terms is off by at most that
 * relative amount, so a log-sum-exp by at most 1.9e-7 absolute (float32
 * rounds an lse near 4 by 2.4e-7 already). For softmax sums only: per-element values that
 * are reported or differentiated use o1p_expf. */
#define O1P_EXPF_FAST_MAX_REL 1.9e-7
O1P_INLINE float o1p_expf_fast(float x) {
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    const float shifter = 12582912.0f; /* 1.5 * 2^23 */
    float xc = x < -87.3365f ? -87.3365f : x;
    float t = xc * log2e + shifter;
    float n = t - shifter;
    float r = xc - n * ln2_hi;
    r = r - n * ln2_lo;
    float p = 8.2903141e-3f;
    p = p * r + 4.1897930e-2f;
    p = p * r + 1.6667636e-1f;
    p = p * r + 4.9999151e-1f;
    p = p * r + 9.9999970e-1f;
    p = p * r + 1.0f;
    uint32_t e = (o1p_float_to_bits(t) - o1p_float_to_bits(shifter) + 127u) << 23;
    float y = p * o1p_bits_to_float(e);
    return x < -87.3365f ? 0.0f : y;
}
#endif /* O1P_VMATH_H */
