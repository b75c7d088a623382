/* kernel_logprob.c: the logprob kernels without Python, to measure compute
 * per logit (data in cache) and streaming from DRAM on 1 or 2 threads.
 * Minimum over repeats; the logits live in 2 MiB-aligned memory advised for
 * huge pages, as NumPy allocates large arrays.
 *
 *   gcc -std=c99 -O3 -fopenmp -fno-trapping-math -fno-math-errno -Icsrc -Icsrc/kernels \
 *       benchmarks/kernel_logprob.c csrc/kernels/logprob.c -o /tmp/kernel_logprob -lm
 *   /tmp/kernel_logprob N V repeats threads
 *   e.g. 4 32768 2000 1 (in L2), 256 151936 5 1 (DRAM, one core), 2048 151936 5 2
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#include "logprob.h"

static int threads = 1;

/* stands in for runtime.c (which needs BLAS): the thread count from argv */
int o1p_threads_for(o1p_int work, o1p_int min_work) {
    (void)work;
    (void)min_work;
    return threads;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s N V repeats threads\n", argv[0]);
        return 2;
    }
    o1p_int N = atol(argv[1]), V = atol(argv[2]);
    int reps = atoi(argv[3]);
    threads = atoi(argv[4]);
    size_t bytes = (size_t)(N * V) * sizeof(float);
    float *x = NULL, *d = NULL;
    if (posix_memalign((void **)&x, 1 << 21, bytes) || posix_memalign((void **)&d, 1 << 21, bytes))
        return 1;
    madvise(x, bytes, MADV_HUGEPAGE);
    madvise(d, bytes, MADV_HUGEPAGE);
    int64_t *t = malloc((size_t)N * sizeof(int64_t));
    float *logp = malloc((size_t)N * 4), *ent = malloc((size_t)N * 4), *lse = malloc((size_t)N * 4);
    float *g = malloc((size_t)N * 4);
    srand(1);
    for (o1p_int i = 0; i < N * V; i++) x[i] = 3.4f * (2.0f * (float)rand() / (float)RAND_MAX - 1.0f);
    for (o1p_int i = 0; i < N; i++) {
        t[i] = rand() % V;
        g[i] = 1.0f;
    }
    double f = 1e30, b = 1e30, be = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        logprob_forward(N, V, x, t, -100, 1.0, logp, ent, lse, NULL);
        double t1 = now();
        logprob_backward(N, V, x, t, -100, 1.0, lse, g, NULL, d, 0, NULL);
        double t2 = now();
        logprob_backward(N, V, x, t, -100, 1.0, lse, g, g, d, 0, NULL);
        double t3 = now();
        f = t1 - t0 < f ? t1 - t0 : f;
        b = t2 - t1 < b ? t2 - t1 : b;
        be = t3 - t2 < be ? t3 - t2 : be;
    }
    double n = (double)(N * V);
    printf("N=%ld V=%ld threads=%d: forward %.3f ns/logit (%.1f GB/s read), backward %.3f ns/logit, "
           "backward with entropy %.3f ns/logit (logp[0]=%g)\n",
           (long)N, (long)V, threads, 1e9 * f / n, 4 * n / f / 1e9, 1e9 * b / n, 1e9 * be / n,
           (double)logp[0]);
    return 0;
}
