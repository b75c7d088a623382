/* runtime.c: thread-count state shared by every kernel, the fork handlers
 * that keep a forked child from waiting on its parent's thread pools or locks,
 * and the CPU feature level reported by show_config().
 *
 * Fork. GNU OpenMP keeps its worker pool across fork, but the workers do not
 * exist in the child: a parallel region of more than one thread there waits
 * for them forever, and libgomp has no way to rebuild the pool. So the child
 * of a process that has run one of our parallel regions (pool_started) marks
 * itself pool_lost and every region of ours stays on one thread for the rest
 * of that process (o1p_threads_for); the thread count it is given still goes
 * to BLAS, whose pthreads pool OpenBLAS rebuilds after fork itself. A child
 * forked before any parallel region keeps full OpenMP. The child also drops
 * to one thread until set_num_threads is called again (documented), gets a
 * fresh blas_lock (another parent thread may have held it at fork time) and
 * a serial-section depth of 0 (the threads inside kernels at fork time do not
 * exist in the child), so a later set_num_threads reaches OpenBLAS. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>

#include "o1p.h"
#include "blas.h"

/* Read and written from any thread without a lock: C11 atomics (relaxed: each
 * is a single independent value). */
static atomic_int num_threads = 0;   /* 0: not yet initialised */
static atomic_int pool_started = 0;  /* this process ran a region of > 1 thread */
static atomic_int pool_lost = 0;     /* forked after pool_started: stay serial */

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

/* prepare / parent: hold blas_lock across fork, so the child's copy is in a
 * known (locked, then reinitialised) state and the section state is not
 * copied half-updated. */
static void before_fork(void) { pthread_mutex_lock(&blas_lock); }

static void after_fork_in_parent(void) { pthread_mutex_unlock(&blas_lock); }

static void after_fork_in_child(void) {
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    blas_lock = fresh;
    /* no thread of the child is inside a kernel; BLAS was left at 1 thread
     * by any section open at fork time, which is the child's count below */
    blas_serial_depth = 0;
    blas_saved_threads = 1;
    if (atomic_load_explicit(&pool_started, memory_order_relaxed))
        atomic_store_explicit(&pool_lost, 1, memory_order_relaxed);
    atomic_store_explicit(&num_threads, 1, memory_order_relaxed);
}

void o1p_runtime_init(void) {
    static atomic_int done = 0;
    if (atomic_exchange(&done, 1)) return;
    atomic_store_explicit(&num_threads, default_threads(), memory_order_relaxed);
    pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
}

int o1p_get_num_threads(void) {
    int n = atomic_load_explicit(&num_threads, memory_order_relaxed);
    if (n == 0) {
        int expect = 0;
        n = default_threads();
        if (!atomic_compare_exchange_strong(&num_threads, &expect, n)) n = expect;
    }
    return n;
}

void o1p_set_num_threads(int n) {
    if (n < 1) n = 1;
    atomic_store_explicit(&num_threads, n, memory_order_relaxed);
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
    if (nt > 1) {
        if (atomic_load_explicit(&pool_lost, memory_order_relaxed)) return 1;
        if (!atomic_load_explicit(&pool_started, memory_order_relaxed))
            atomic_store_explicit(&pool_started, 1, memory_order_relaxed);
    }
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

/* ---- hand-dispatched paths ------------------------------------------------ */

static int cpu_path(void) {
#if defined(O1P_HAVE_CLONES)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return O1P_SIMD_V4;
    if (__builtin_cpu_supports("x86-64-v3")) return O1P_SIMD_V3;
#endif
    return O1P_SIMD_BASE;
}

static atomic_int simd_path = -1; /* -1: not yet read */

/* O1P_SIMD from the environment: a level, or -1 when unset or not understood
 * (the CPU's level then; the Python layer warns about a bad value). */
static int env_cap(void) {
    const char *v = getenv("O1P_SIMD");
    if (v == NULL || *v == 0) return -1;
    if (!strcmp(v, "baseline") || !strcmp(v, "sse2")) return O1P_SIMD_BASE;
    if (!strcmp(v, "x86-64-v3") || !strcmp(v, "avx2")) return O1P_SIMD_V3;
    if (!strcmp(v, "x86-64-v4") || !strcmp(v, "avx512")) return O1P_SIMD_V4;
    return -1;
}

int o1p_simd_path(void) {
    int p = atomic_load_explicit(&simd_path, memory_order_relaxed);
    if (p < 0) {
        int cap = env_cap();
        p = cpu_path();
        if (cap >= 0 && cap < p) p = cap;
        atomic_store_explicit(&simd_path, p, memory_order_relaxed);
    }
    return p;
}

int o1p_set_simd_cap(int level) {
    int p = cpu_path();
    if (level < p) p = level < O1P_SIMD_V3 ? O1P_SIMD_BASE : level < O1P_SIMD_V4 ? O1P_SIMD_V3 : O1P_SIMD_V4;
    atomic_store_explicit(&simd_path, p, memory_order_relaxed);
    return p;
}

const char *o1p_simd_path_name(int path) {
    switch (path) {
    case O1P_SIMD_V4: return "x86-64-v4 (AVX-512)";
    case O1P_SIMD_V3: return "x86-64-v3 (AVX2+FMA)";
    default: return "baseline (SSE2)";
    }
}
