/* o1p.h: macros, status codes and the dimension legend shared by every C file
 * of o1pruner's core. Kernels include this and blas.h only: no Python.h.
 *
 * Dimension legend (used in every shape comment of the project):
 *   S  samples (flat list of sampled responses)     G  groups (problems)
 *   N  tokens (rows of a flattened batch)           V  vocabulary size
 *   B  sequences in a batch                         T  time steps (padded)
 *   d  hidden width                                 H  attention heads
 *   L  layers                                       K  samples per problem
 * Arrays are C-contiguous; [B,T] means row b starts at b*T.
 */
#ifndef O1P_H
#define O1P_H

#include <stddef.h>
#include <stdint.h>

/* Status codes returned by kernels. Bindings translate them to exceptions. */
enum {
    O1P_OK = 0,
    O1P_ENOMEM = 1,   /* an allocation failed */
    O1P_EVALUE = 2,   /* bad value found during compute (e.g. all -inf row) */
    O1P_EINDEX = 3    /* index out of range found during compute */
};

/* Every size and index in kernels is a signed 64-bit integer (NumPy's npy_intp
 * on our platforms); BLAS takes its own integer type (blas.h). */
typedef int64_t o1p_int;

#if defined(__GNUC__) || defined(__clang__)
#define O1P_RESTRICT __restrict__
#define O1P_INLINE static inline __attribute__((always_inline))
#define O1P_UNUSED __attribute__((unused))
#define O1P_LIKELY(x) __builtin_expect(!!(x), 1)
#define O1P_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define O1P_RESTRICT
#define O1P_INLINE static inline
#define O1P_UNUSED
#define O1P_LIKELY(x) (x)
#define O1P_UNLIKELY(x) (x)
#endif

/* Function multiversioning: hot loops get an AVX-512 and an AVX2+FMA clone
 * besides the baseline, chosen once at load time by the ifunc resolver
 * (cpu features are read by __builtin_cpu_supports). Off under sanitizers and
 * for non-x86 targets. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__) && !defined(O1P_NO_CLONES)
#define O1P_TARGET_CLONES \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define O1P_HAVE_CLONES 1
#else
#define O1P_TARGET_CLONES
#endif

/* Hand-dispatched multiversioning, for the kernels whose path tests must be
 * able to choose (o1p_simd_path, see below; the clones above are fixed by the
 * ifunc resolver at load time): O1P_DISPATCHED(type, name, (params), (args))
 * defines `static type name(params)` returning name##_body(args) compiled for
 * x86-64-v4, x86-64-v3 or the baseline; name##_body must be O1P_INLINE and
 * return a value (int where there is nothing to return). */
#if defined(O1P_HAVE_CLONES)
#define O1P_DISPATCHED(type, name, params, args)                                    \
    __attribute__((target("arch=x86-64-v4"))) static type name##_v4 params {        \
        return name##_body args;                                                    \
    }                                                                               \
    __attribute__((target("arch=x86-64-v3"))) static type name##_v3 params {        \
        return name##_body args;                                                    \
    }                                                                               \
    static type name##_base params { return name##_body args; }                     \
    static type name params {                                                       \
        switch (o1p_simd_path()) {                                                  \
        case O1P_SIMD_V4: return name##_v4 args;                                    \
        case O1P_SIMD_V3: return name##_v3 args;                                    \
        default: return name##_base args;                                           \
        }                                                                           \
    }
#else
#define O1P_DISPATCHED(type, name, params, args) \
    static type name params { return name##_body args; }
#endif

/* OpenMP is optional. O1P_OMP(x) expands to `#pragma omp x` when available and
 * to nothing otherwise; every parallel loop must be correct serially. */
#define O1P_PRAGMA_(x) _Pragma(#x)
#ifdef _OPENMP
#include <omp.h>
#define O1P_OMP(x) O1P_PRAGMA_(omp x)
#else
#define O1P_OMP(x)
#endif

/* ---- checked size arithmetic --------------------------------------------
 * Every size product and sum in csrc/ (buffer and arena sizes, carve offsets,
 * shape products, work estimates) goes through these, never through a bare
 * `*` or `+` on sizes that come from the caller (the build uses -fwrapv, so an
 * unchecked overflow wraps silently and skips the range checks after it).
 *
 * o1p_mul_overflow / o1p_add_overflow / o1p_sub_overflow: 1 on int64
 *   overflow, else 0 and *out.
 * o1p_size_mul / o1p_size_add: for chains of size arithmetic; *ovf becomes 1
 *   (and stays 1) when an operand is negative or the result overflows; the
 *   value returned is then 0 and meaningless. Check *ovf once at the end.
 * o1p_mul_sat: a * b for non-negative work estimates, saturated at INT64_MAX
 *   (only ever used to pick thread counts or to decide about the GIL). */
static inline int o1p_mul_overflow(o1p_int a, o1p_int b, o1p_int *out) {
    return __builtin_mul_overflow(a, b, out);
}
static inline int o1p_add_overflow(o1p_int a, o1p_int b, o1p_int *out) {
    return __builtin_add_overflow(a, b, out);
}
static inline int o1p_sub_overflow(o1p_int a, o1p_int b, o1p_int *out) {
    return __builtin_sub_overflow(a, b, out);
}
static inline o1p_int o1p_size_mul(o1p_int a, o1p_int b, int *ovf) {
    o1p_int r;
    if (a < 0 || b < 0 || o1p_mul_overflow(a, b, &r)) {
        *ovf = 1;
        return 0;
    }
    return r;
}
static inline o1p_int o1p_size_add(o1p_int a, o1p_int b, int *ovf) {
    o1p_int r;
    if (a < 0 || b < 0 || o1p_add_overflow(a, b, &r)) {
        *ovf = 1;
        return 0;
    }
    return r;
}
static inline o1p_int o1p_mul_sat(o1p_int a, o1p_int b) {
    o1p_int r;
    if (a <= 0 || b <= 0) return 0;
    return o1p_mul_overflow(a, b, &r) ? INT64_MAX : r;
}

/* Carving one float arena into buffers, in order: base NULL only counts.
 * Every size goes through the checked arithmetic above (a wrapped size would
 * pass an "arena large enough" check with a tiny arena); once a size has
 * overflowed, every later buffer is NULL and o1p_carve_total is -1.
 *
 *     o1p_carve k = {base, 0, 0};
 *     buf = o1p_carve_take(&k, o1p_carve_mul(&k, rows, d));
 *     return o1p_carve_total(&k);   (floats needed, or -1) */
typedef struct {
    float *base;
    o1p_int off;
    int ovf;
} o1p_carve;
static inline o1p_int o1p_carve_mul(o1p_carve *k, o1p_int a, o1p_int b) { return o1p_size_mul(a, b, &k->ovf); }
static inline float *o1p_carve_take(o1p_carve *k, o1p_int n) {
    float *p = k->base && !k->ovf ? k->base + k->off : NULL;
    k->off = o1p_size_add(k->off, n, &k->ovf);
    return p;
}
static inline o1p_int o1p_carve_total(const o1p_carve *k) { return k->ovf ? -1 : k->off; }

#define O1P_MIN(a, b) ((a) < (b) ? (a) : (b))
#define O1P_MAX(a, b) ((a) > (b) ? (a) : (b))

/* ---- runtime: threads and CPU features (kernels/runtime.c) -------------- */

/* Number of threads our parallel loops use (>= 1). Defaults to the CPUs this
 * process may run on. Inside a forked child it drops to 1 until set again. */
int o1p_get_num_threads(void);
/* Sets our thread count and the BLAS thread count used outside our parallel
 * regions. n < 1 is clamped to 1. Safe in a forked child: see runtime.c (a
 * child forked after this process ran a parallel region keeps its own
 * loops on one thread, as GNU OpenMP cannot rebuild its thread pool after
 * fork, and gives the n threads to BLAS). */
void o1p_set_num_threads(int n);
/* Threads to use for a loop with `work` units of roughly equal cost, given the
 * minimum work worth one thread (so small inputs stay single-threaded). Every
 * OpenMP region of the package takes its thread count from here. */
int o1p_threads_for(o1p_int work, o1p_int min_work_per_thread);
/* BLAS calls made inside our own parallel regions must run on one thread (two
 * thread pools on two cores lose, and a pthreads OpenBLAS called from an
 * OpenMP region may hang). The scipy-openblas32 wheel is a pthreads build that
 * lacks openblas_set_num_threads_local, so a kernel that calls BLAS from its
 * parallel region brackets the region, from the calling thread, with
 * begin/end: the global BLAS count drops to 1 and is restored after. Nested
 * and concurrent kernels (several Python threads) are reference counted, and
 * o1p_set_num_threads during a section takes effect at its end. */
void o1p_blas_serial_begin(void);
void o1p_blas_serial_end(void);
/* Highest instruction-set level the target clones dispatch to on this CPU:
 * "x86-64-v4 (AVX-512)", "x86-64-v3 (AVX2+FMA)" or "baseline". */
const char *o1p_simd_level(void);
/* The path of the kernels dispatched by hand (o1p_simd_path, not the target
 * clones, which the ifunc resolver fixes at load time): the CPU's level,
 * capped by the environment variable O1P_SIMD (read once: "baseline",
 * "x86-64-v3" / "avx2", "x86-64-v4" / "avx512") or o1p_set_simd_cap (tests
 * compare the paths in one process). */
enum { O1P_SIMD_BASE = 0, O1P_SIMD_V3 = 3, O1P_SIMD_V4 = 4 };
int o1p_simd_path(void);
/* Caps the hand-dispatched path at `level` (O1P_SIMD_*; a level above the
 * CPU's gives the CPU's); returns the path now in force. */
int o1p_set_simd_cap(int level);
/* "x86-64-v4 (AVX-512)" etc. for a path. */
const char *o1p_simd_path_name(int path);
/* Called once when the module loads: installs the fork handler. */
void o1p_runtime_init(void);

#endif /* O1P_H */
