/* roofline_probe.c: this machine's limits for benchmarks/roofline.py, in C so
 * that they are measured the way the kernels run: OpenMP threads, the vector
 * width the package's dispatch picks (target clones, as in csrc/), the
 * package's own exp (csrc/kernels/vmath.h) and the package's BLAS. Each call
 * prints one JSON object; rates are the best of `repeats` timed runs (a limit
 * is what the machine can reach, not what it reaches on average).
 *
 *   read  BYTES THREADS REPEATS   float32 array of BYTES, each thread sums its
 *                                 contiguous share in 32 float lanes: GB/s read
 *   copy  BYTES THREADS REPEATS   dst[i] = src[i] over BYTES: GB/s counted as
 *                                 2 x BYTES (read + write; the write-allocate
 *                                 read is not counted, as in STREAM)
 *   exp   WHICH THREADS REPEATS   WHICH = full | nonpos | fast: o1p_expf,
 *                                 o1p_expf_nonpos or o1p_expf_fast over an
 *                                 L1-resident block, summed: elements/ns
 *   sgemm M N K TA TB THREADS REPEATS
 *                                 C[M,N] = op(A) op(B), TA/TB 0 or 1: GFLOP/s
 *
 * Built by roofline.py with the package's compiler flags plus -fopenmp and
 * linked against the package's BLAS; by hand:
 *   SOB=$(python -c "import scipy_openblas32 as s; print(s.get_lib_dir()[:-4])")
 *   gcc -std=c11 -O3 -fopenmp -fno-trapping-math -fno-math-errno -DO1P_BLAS_PREFIX_SCIPY \
 *       -Icsrc -Icsrc/kernels -I$SOB/include benchmarks/roofline_probe.c \
 *       -L$SOB/lib -lscipy_openblas -Wl,-rpath,$SOB/lib -lm -o /tmp/roofline_probe
 */
#define _GNU_SOURCE
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blas.h"
#include "lanes.h"
#include "vmath.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static volatile float sink;

O1P_TARGET_CLONES
static float read_share(const float *x, int64_t n) {
    float acc[O1P_LANES] = {0};
    int64_t j = 0;
    O1P_LANE_GROUPS(j, n, O1P_LANES)
        for (int k = 0; k < O1P_LANES; k++) acc[k] += x[j + k];
    for (; j < n; j++) acc[0] += x[j];
    return (float)o1p_lanes_sum(acc);
}

O1P_TARGET_CLONES
static void copy_share(const float *O1P_RESTRICT x, float *O1P_RESTRICT y, int64_t n) {
    for (int64_t j = 0; j < n; j++) y[j] = x[j];
}

#define EXP_BLOCK 2048 /* 8 KiB: L1-resident */

/* sum of exp over the block, `which`: 0 full, 1 nonpos, 2 fast. Compiled
 * as the kernels that use them: o1p_expf in ppo.c without FMA contraction,
 * the softmax exps in logprob.c with it. */
O1P_TARGET_CLONES __attribute__((optimize("fp-contract=off")))
static float exp_block_full(const float *x) {
    float acc[O1P_LANES] = {0};
    for (int j = 0; j < EXP_BLOCK; j += O1P_LANES)
        for (int k = 0; k < O1P_LANES; k++) acc[k] += o1p_expf(x[j + k]);
    return (float)o1p_lanes_sum(acc);
}

O1P_TARGET_CLONES __attribute__((optimize("fp-contract=fast")))
static float exp_block(const float *x, int which) {
    float acc[O1P_LANES] = {0};
    if (which == 0) {
        return exp_block_full(x);
    } else if (which == 1) {
        for (int j = 0; j < EXP_BLOCK; j += O1P_LANES)
            for (int k = 0; k < O1P_LANES; k++) acc[k] += o1p_expf_nonpos(x[j + k]);
    } else {
#ifdef O1P_EXPF_FAST_MAX_REL
        for (int j = 0; j < EXP_BLOCK; j += O1P_LANES)
            for (int k = 0; k < O1P_LANES; k++) acc[k] += o1p_expf_fast(x[j + k]);
#endif
    }
    return (float)o1p_lanes_sum(acc);
}

static float *alloc_floats(int64_t n) {
    float *p = NULL;
    if (posix_memalign((void **)&p, 64, (size_t)n * sizeof(float)) != 0) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

/* each thread first touches its own share (pages local to it) */
static void fill(float *x, int64_t n, int nt, float v) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < n; i++) x[i] = v * (float)((i % 1024) - 512) / 512.0f;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: see the header of roofline_probe.c\n");
        return 2;
    }
    const char *mode = argv[1];
    if (!strcmp(mode, "read") || !strcmp(mode, "copy")) {
        if (argc != 5) return 2;
        int64_t n = atoll(argv[2]) / (int64_t)sizeof(float);
        int nt = atoi(argv[3]), rep = atoi(argv[4]);
        int copy = !strcmp(mode, "copy");
        float *x = alloc_floats(n), *y = copy ? alloc_floats(n) : NULL;
        fill(x, n, nt, 1.0f);
        if (copy) fill(y, n, nt, 0.0f);
        double best = 1e30;
        for (int r = 0; r < rep + 1; r++) { /* first run warms caches and TLB */
            double t0 = now();
            float tot = 0.0f;
#pragma omp parallel num_threads(nt) reduction(+ : tot)
            {
                int id = omp_get_thread_num(), k = omp_get_num_threads();
                int64_t lo = n * id / k, hi = n * (id + 1) / k;
                if (copy)
                    copy_share(x + lo, y + lo, hi - lo);
                else
                    tot += read_share(x + lo, hi - lo);
            }
            double t = now() - t0;
            sink = tot + (copy ? y[n / 2] : 0.0f);
            if (r > 0 && t < best) best = t;
        }
        double bytes = (double)n * sizeof(float) * (copy ? 2.0 : 1.0);
        printf("{\"mode\": \"%s\", \"bytes\": %lld, \"threads\": %d, \"seconds\": %.9g, \"gb_per_s\": %.6g}\n",
               mode, (long long)(n * (int64_t)sizeof(float)), nt, best, bytes / best * 1e-9);
        free(x);
        free(y);
        return 0;
    }
    if (!strcmp(mode, "exp")) {
        if (argc != 5) return 2;
        int which = !strcmp(argv[2], "full") ? 0 : !strcmp(argv[2], "nonpos") ? 1 : !strcmp(argv[2], "fast") ? 2 : -1;
        if (which < 0) return 2;
#ifndef O1P_EXPF_FAST_MAX_REL
        if (which == 2) {
            printf("{\"mode\": \"exp\", \"which\": \"fast\", \"available\": false}\n");
            return 0;
        }
#endif
        int nt = atoi(argv[3]), rep = atoi(argv[4]);
        const int iters = 2000; /* 4 M exps per thread per run */
        double best = 1e30;
        for (int r = 0; r < rep + 1; r++) {
            double t0 = now();
            float tot = 0.0f;
#pragma omp parallel num_threads(nt) reduction(+ : tot)
            {
                float xb[EXP_BLOCK];
                for (int j = 0; j < EXP_BLOCK; j++) xb[j] = -20.0f * (float)j / EXP_BLOCK; /* softmax range */
                for (int it = 0; it < iters; it++) {
                    xb[it % EXP_BLOCK] -= 1e-3f; /* keeps the loop from being hoisted */
                    tot += exp_block(xb, which);
                }
            }
            double t = now() - t0;
            sink = tot;
            if (r > 0 && t < best) best = t;
        }
        double elems = (double)iters * EXP_BLOCK * nt;
        printf("{\"mode\": \"exp\", \"which\": \"%s\", \"threads\": %d, \"seconds\": %.9g, \"per_ns\": %.6g}\n",
               argv[2], nt, best, elems / best * 1e-9);
        return 0;
    }
    if (!strcmp(mode, "sgemm")) {
        if (argc != 9) return 2;
        int M = atoi(argv[2]), N = atoi(argv[3]), K = atoi(argv[4]);
        int ta = atoi(argv[5]), tb = atoi(argv[6]), nt = atoi(argv[7]), rep = atoi(argv[8]);
        float *a = alloc_floats((int64_t)M * K), *b = alloc_floats((int64_t)K * N), *c = alloc_floats((int64_t)M * N);
        fill(a, (int64_t)M * K, 1, 0.01f);
        fill(b, (int64_t)K * N, 1, 0.01f);
        fill(c, (int64_t)M * N, 1, 0.0f);
        O1P_BLAS_SET_THREADS(nt);
        double best = 1e30;
        for (int r = 0; r < rep + 1; r++) {
            double t0 = now();
            O1P_SGEMM(ta, tb, M, N, K, 1.0f, a,
                      ta ? M : K, b, tb ? K : N, 0.0f, c, N);
            double t = now() - t0;
            if (r > 0 && t < best) best = t;
        }
        sink = c[0];
        printf("{\"mode\": \"sgemm\", \"m\": %d, \"n\": %d, \"k\": %d, \"ta\": %d, \"tb\": %d, \"threads\": %d, "
               "\"seconds\": %.9g, \"gflop_per_s\": %.6g}\n",
               M, N, K, ta, tb, nt, best, 2.0 * M * N * K / best * 1e-9);
        free(a);
        free(b);
        free(c);
        return 0;
    }
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
