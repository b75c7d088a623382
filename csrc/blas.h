/* blas.h: the only place that names BLAS symbols (as NumPy's npy_cblas.h).
 * Two builds: the scipy-openblas32 wheel, whose symbols carry a scipy_ prefix,
 * and a system OpenBLAS with plain cblas_ names. Both use a 32-bit blasint, so
 * every size passed to BLAS must be checked against O1P_BLAS_INT_MAX first.
 * Kernels call O1P_SGEMM and friends; they pass transposes, never copy.
 */
#ifndef O1P_BLAS_H
#define O1P_BLAS_H

#include <cblas.h>
#include <limits.h>

#ifdef O1P_BLAS_PREFIX_SCIPY
#define O1P_CBLAS_FUNC(name) scipy_cblas_##name
#define O1P_OPENBLAS_FUNC(name) scipy_openblas_##name
#else
#define O1P_CBLAS_FUNC(name) cblas_##name
#define O1P_OPENBLAS_FUNC(name) openblas_##name
#endif

typedef blasint o1p_blasint;
#define O1P_BLAS_INT_MAX INT_MAX

/* C = alpha * op(A) op(B) + beta * C, row-major. */
#define O1P_SGEMM(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)                 \
    O1P_CBLAS_FUNC(sgemm)(CblasRowMajor, (ta) ? CblasTrans : CblasNoTrans,               \
                          (tb) ? CblasTrans : CblasNoTrans, (o1p_blasint)(m),            \
                          (o1p_blasint)(n), (o1p_blasint)(k), (alpha), (a),              \
                          (o1p_blasint)(lda), (b), (o1p_blasint)(ldb), (beta), (c),      \
                          (o1p_blasint)(ldc))

/* y = alpha * op(A) x + beta * y, row-major. */
#define O1P_SGEMV(ta, m, n, alpha, a, lda, x, incx, beta, y, incy)                       \
    O1P_CBLAS_FUNC(sgemv)(CblasRowMajor, (ta) ? CblasTrans : CblasNoTrans,               \
                          (o1p_blasint)(m), (o1p_blasint)(n), (alpha), (a),              \
                          (o1p_blasint)(lda), (x), (o1p_blasint)(incx), (beta), (y),     \
                          (o1p_blasint)(incy))

#define O1P_SDOT(n, x, incx, y, incy)                                                    \
    O1P_CBLAS_FUNC(sdot)((o1p_blasint)(n), (x), (o1p_blasint)(incx), (y), (o1p_blasint)(incy))

/* Thread control. OpenBLAS's pthread pool is global. There is deliberately no
 * O1P_BLAS_SET_THREADS_LOCAL: openblas_set_num_threads_local exists only in
 * OpenMP builds of OpenBLAS; the scipy-openblas32 wheel (a pthreads build)
 * declares it in cblas.h but does not export it, so a call would make the
 * extension fail to import. Kernels that call BLAS inside their own parallel
 * regions use o1p_blas_serial_begin/end (o1p.h) around the region instead. */
#define O1P_BLAS_SET_THREADS(n) O1P_OPENBLAS_FUNC(set_num_threads)(n)
#define O1P_BLAS_GET_THREADS() O1P_OPENBLAS_FUNC(get_num_threads)()
#define O1P_BLAS_CONFIG() O1P_OPENBLAS_FUNC(get_config)()
#define O1P_BLAS_CORENAME() O1P_OPENBLAS_FUNC(get_corename)()

#endif /* O1P_BLAS_H */
