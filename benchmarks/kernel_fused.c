/* kernel_fused.c: the fused LM-head kernels without Python, against the plain
 * sgemms of the same BLAS, in process CPU time (both threads summed), so the
 * ratio measures work and not waiting on a shared machine. Minimum over
 * interleaved repeats. Also a quick way to try tile sizes: -DFUSED_ROWS_MIN=256
 * -DFUSED_COLS=1024 etc. change csrc/kernels/fused.c's geometry.
 *
 *   SOB=$(python -c "import scipy_openblas32 as s; print(s.get_lib_dir()[:-4])")
 *   gcc -std=c99 -O3 -fopenmp -fno-trapping-math -fno-math-errno -DO1P_BLAS_PREFIX_SCIPY \
 *       -Icsrc -Icsrc/kernels -I$SOB/include benchmarks/kernel_fused.c csrc/kernels/fused.c \
 *       csrc/kernels/runtime.c -L$SOB/lib -lscipy_openblas -Wl,-rpath,$SOB/lib -lm \
 *       -o /tmp/kernel_fused
 *   /tmp/kernel_fused N d V threads fwd|bwd [repeats]
 *   e.g. 1024 896 18992 1 fwd   (forward vs one sgemm of the N x V logits)
 *        1024 896 18992 1 bwd   (backward vs logits, G W and G^T H)
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blas.h"
#include "fused.h"

static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static float *random_floats(o1p_int n, float scale) {
    float *a = (float *)malloc((size_t)n * sizeof(float));
    for (o1p_int i = 0; i < n && a; i++) a[i] = scale * ((float)rand() / (float)RAND_MAX - 0.5f);
    return a;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: %s N d V threads fwd|bwd [repeats]\n", argv[0]);
        return 2;
    }
    o1p_int N = atol(argv[1]), d = atol(argv[2]), V = atol(argv[3]);
    int nt = atoi(argv[4]), bwd = strcmp(argv[5], "bwd") == 0;
    int reps = argc > 6 ? atoi(argv[6]) : 7;
    o1p_runtime_init();
    o1p_set_num_threads(nt);
    srand(1);
    float *h = random_floats(N * d, 0.2f), *w = random_floats(V * d, 0.2f);
    float *c = (float *)malloc((size_t)(N * V) * sizeof(float));
    float *lp = malloc(N * sizeof(float)), *en = malloc(N * sizeof(float));
    float *ls = malloc(N * sizeof(float)), *gl = malloc(N * sizeof(float));
    float *gh = calloc((size_t)(N * d), sizeof(float)), *gw = calloc((size_t)(V * d), sizeof(float));
    int64_t *t = malloc(N * sizeof(int64_t));
    if (!h || !w || !c || !lp || !en || !ls || !gl || !gh || !gw || !t) return 1;
    for (o1p_int i = 0; i < N; i++) t[i] = rand() % V, gl[i] = 1.0f;
    for (o1p_int i = 0; i < N * V; i++) c[i] = 1e-6f; /* stands for G in the backward */

    if (fused_logprobs_forward(N, d, V, h, w, NULL, t, -100, 1.0f, lp, en, ls) != O1P_OK) return 1;
    double best_f = 1e30, best_p = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = cpu_now();
        if (bwd)
            fused_logprobs_backward(N, d, V, h, w, NULL, t, -100, 1.0f, ls, en, gl, gl, gh, gw, NULL);
        else
            fused_logprobs_forward(N, d, V, h, w, NULL, t, -100, 1.0f, lp, en, ls);
        double t1 = cpu_now();
        if (bwd) {
            /* the three products at full size; G is the buffer c (its
             * values do not matter for the time) */
            O1P_SGEMM(0, 1, N, V, d, 1.0f, h, d, w, d, 0.0f, c, V);
            O1P_SGEMM(0, 0, N, d, V, 1.0f, c, V, w, d, 0.0f, gh, d);
            O1P_SGEMM(1, 0, V, d, N, 1.0f, c, V, h, d, 0.0f, gw, d);
        } else {
            O1P_SGEMM(0, 1, N, V, d, 1.0f, h, d, w, d, 0.0f, c, V);
        }
        double t2 = cpu_now();
        if (t1 - t0 < best_f) best_f = t1 - t0;
        if (t2 - t1 < best_p) best_p = t2 - t1;
    }
    double flop = (bwd ? 3.0 : 1.0) * 2.0 * (double)N * (double)V * (double)d;
    printf("N=%lld d=%lld V=%lld threads=%d %s: fused %.4f s, plain %.4f s (CPU time), ratio %.3f, "
           "plain %.0f GFLOP/s per CPU-second\n",
           (long long)N, (long long)d, (long long)V, nt, bwd ? "backward" : "forward", best_f, best_p,
           best_f / best_p, flop / best_p / 1e9);
    free(h), free(w), free(c), free(lp), free(en), free(ls), free(gl), free(gh), free(gw), free(t);
    return 0;
}
