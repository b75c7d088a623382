/* runtime.c: thread-count state shared by every kernel, the fork handler that
 * keeps a forked child from waiting on its parent's OpenMP pool, and the CPU
 * feature level reported by show_config(). */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include "o1p.h"
#include "blas.h"

static int num_threads = 0; /* 0: not yet initialised */

/* BLAS serial sections (o1p_blas_serial_begin/end): nesting depth and the
 * BLAS thread count to restore when the last one ends. */
static pthread_mutex_t blas_lock = PTHREAD_MUTEX_INITIALIZER;
static int blas_serial_depth = 0;
static int blas_saved_threads = 1;

static int default_threads(void) {
    int n = 1;
#ifdef _OPENMP
    n = omp_get_max_threads(); /* honours OMP_NUM_THREADS */
#else
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) n = CPU_COUNT(&set);
#endif
    return n < 1 ? 1 : n;
}

static void after_fork_in_child(void) {
    /* libgomp's thread pool does not exist in the child: a parallel region of
     * more than one thread would wait for it forever. Stay serial until the
     * user asks for threads again. */
    num_threads = 1;
}

void o1p_runtime_init(void) {
    static int done = 0;
    if (done) return;
    done = 1;
    num_threads = default_threads();
    pthread_atfork(NULL, NULL, after_fork_in_child);
}

int o1p_get_num_threads(void) {
    if (num_threads == 0) num_threads = default_threads();
    return num_threads;
}

void o1p_set_num_threads(int n) {
    if (n < 1) n = 1;
    num_threads = n;
    pthread_mutex_lock(&blas_lock);
    if (blas_serial_depth > 0)
        blas_saved_threads = n; /* applied when the running kernels end */
    else
        O1P_BLAS_SET_THREADS(n);
    pthread_mutex_unlock(&blas_lock);
}

void o1p_blas_serial_begin(void) {
    pthread_mutex_lock(&blas_lock);
    if (blas_serial_depth++ == 0) {
        blas_saved_threads = O1P_BLAS_GET_THREADS();
        if (blas_saved_threads != 1) O1P_BLAS_SET_THREADS(1);
    }
    pthread_mutex_unlock(&blas_lock);
}

void o1p_blas_serial_end(void) {
    pthread_mutex_lock(&blas_lock);
    if (blas_serial_depth > 0 && --blas_serial_depth == 0 && blas_saved_threads != 1)
        O1P_BLAS_SET_THREADS(blas_saved_threads);
    pthread_mutex_unlock(&blas_lock);
}

int o1p_threads_for(o1p_int work, o1p_int min_work_per_thread) {
    int nt = o1p_get_num_threads();
    if (min_work_per_thread < 1) min_work_per_thread = 1;
    o1p_int useful = work / min_work_per_thread;
    if (useful < nt) nt = (int)(useful < 1 ? 1 : useful);
    return nt;
}

const char *o1p_simd_level(void) {
#if defined(O1P_HAVE_CLONES)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return "x86-64-v4 (AVX-512)";
    if (__builtin_cpu_supports("x86-64-v3")) return "x86-64-v3 (AVX2+FMA)";
    return "baseline (SSE2)";
#else
    return "baseline (target clones disabled in this build)";
#endif
}
