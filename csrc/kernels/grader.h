/* grader.h: math answer grading, the accuracy term A(x, y) of the reward.
 * Extraction of the final answer from a response, a normaliser compatible with
 * the Hendrycks/PRM800K one, exact numbers, an expression evaluator and a
 * structural comparison that answers EQUAL / NOT_EQUAL / UNKNOWN.
 *
 * Pure C99, no Python.h. Every function is thread-safe: no global mutable
 * state; scratch memory lives in a grader_ctx owned by one thread. Inputs are
 * raw bytes (UTF-8 expected, anything accepted) with an explicit length; no
 * input, however long, deep or malformed, makes these functions recurse
 * without bound or read out of bounds.
 */
#ifndef O1P_GRADER_H
#define O1P_GRADER_H

#include "o1p.h"

/* Verdicts. UNKNOWN means the C layer could not decide (unsupported syntax,
 * evaluation failure, results too close to call): callers may ask a slower
 * checker, or count it as not equal. */
enum { GRADER_NOT_EQUAL = 0, GRADER_EQUAL = 1, GRADER_UNKNOWN = 2 };

/* Extraction modes (grader_extract). */
enum {
    GRADER_EXTRACT_LAST_BOXED = 0,  /* last complete \boxed{..} / \fbox{..} / \boxed x */
    GRADER_EXTRACT_FIRST_BOXED = 1, /* first one (the public O1-Pruner behaviour) */
    GRADER_EXTRACT_ANSWER_IS = 2,   /* "answer is X", "Answer: X" (last occurrence) */
    GRADER_EXTRACT_HASH = 3,        /* GSM8K "#### X" (last occurrence) */
    GRADER_EXTRACT_LAST_NUMBER = 4, /* last number in the text */
    GRADER_EXTRACT_ALL_BOXED = 5,   /* every top-level box, joined by ", " */
    GRADER_EXTRACT_LAST_MATH = 6,   /* last $..$, $$..$$, \(..\) or \[..\] block */
    GRADER_EXTRACT_NMODES = 7
};

/* Comparison switches. grader_opts_default fills the documented defaults. */
typedef struct {
    /* Relative tolerance used when one side is a decimal approximation of a
     * number the other side writes exactly (0.0833333 vs \frac{1}{12}, 1.4142
     * vs \sqrt{2}). Exact rationals are compared exactly; two exact forms
     * that are not rational (\sqrt{8} vs 2\sqrt{2}) must agree to 1e-9 in
     * double precision. Default 1e-6. */
    double rtol;
    /* PRM800K's strict rules: two fractions of integers must be written the
     * same (\frac{2}{4} != \frac{1}{2}), and an integer gold answer needs an
     * integer prediction. Default 0. */
    int strict_fractions;
    /* Compare bare comma lists (1, 2, 3) and sets \{..\} in order. Default 0:
     * order-insensitive, as "enter all solutions separated by commas" wants.
     * Parenthesised tuples, vectors, matrices and intervals are always
     * ordered. */
    int ordered_lists;
} grader_opts;

void grader_opts_default(grader_opts *opts);

/* Per-thread scratch memory (an arena that grows as needed, up to a cap, and
 * is reset after each comparison). */
typedef struct grader_ctx grader_ctx;
grader_ctx *grader_ctx_new(void);
void grader_ctx_free(grader_ctx *ctx);

/* Answer of `text[0:n]` under the first of `modes[0:nmodes]` that finds one.
 * Writes it to out (capacity >= n + 1 bytes, NUL-terminated) and its length
 * to *out_len. Returns 1 when found, 0 when none of the modes found one
 * (out = ""). Runs in O(n) time per mode and O(1) extra memory. */
int grader_extract(const char *text, o1p_int n, const int *modes, int nmodes, char *out,
                   o1p_int *out_len);

/* Verdict of prediction `pred[0:np]` against the ground truth `gold[0:ng]`
 * (both already extracted answers; a \boxed{} or $..$ around them is
 * tolerated). ctx may be NULL (a temporary one is made). Returns
 * GRADER_EQUAL / GRADER_NOT_EQUAL / GRADER_UNKNOWN; out of memory gives
 * GRADER_UNKNOWN. */
int grader_compare(grader_ctx *ctx, const char *pred, o1p_int np, const char *gold, o1p_int ng,
                   const grader_opts *opts);

/* Longest answer (bytes) grader_normalize accepts: normalising n bytes takes
 * up to 8n + 80 bytes of the grader's per-call scratch arena (256 MiB), so
 * every answer up to this length fits it. */
#define GRADER_NORMALIZE_MAX_LEN (((o1p_int)32 << 20) - 64)

/* The normalised form of an answer (what the comparison parses), written to
 * out (capacity cap >= 4 n + 64 always suffices). Returns its length, or -1
 * when n > GRADER_NORMALIZE_MAX_LEN, the result did not fit, or out of
 * memory. Used by the Python fallback and for debugging. */
o1p_int grader_normalize(grader_ctx *ctx, const char *s, o1p_int n, char *out, o1p_int cap);

/* Batched comparison of S pairs: verdict[i] = grader_compare(pred[i], gold[i]).
 * pred[i] == NULL means "no answer" (verdict NOT_EQUAL). With nmodes > 0 the
 * answer is first extracted from pred[i] with `modes` (a response with no
 * answer gets NOT_EQUAL and found[i] = 0; found may be NULL). Runs on
 * `nthreads` threads (OpenMP; serial without it). Returns O1P_OK or
 * O1P_ENOMEM. Shapes: pred, plen, gold, glen, verdict, found: [S]. */
int grader_compare_many(o1p_int S, const char *const *pred, const o1p_int *plen,
                        const char *const *gold, const o1p_int *glen, const int *modes, int nmodes,
                        const grader_opts *opts, int nthreads, int8_t *verdict, uint8_t *found);

#endif /* O1P_GRADER_H */
