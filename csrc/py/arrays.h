/* arrays.h: argument coercion and validation for the bindings (the role of
 * NumPy's arr_interp). Every boundary helper of the package lives here; each
 * binding runs one validation block built from these helpers, then hands bare
 * pointers to a kernel. Every helper that fails sets a ValueError or TypeError
 * whose message starts with the argument's name and returns NULL / -1. Inputs
 * are never modified.
 *
 * The "owned or re-checked" rule. A kernel that runs without the GIL may see
 * another Python thread write into any array it was given. Therefore:
 *  - every index, length, offset, id or mask input goes through
 *    o1p_as_index / o1p_as_mask, which always return a private copy (owned:
 *    no other object refers to it), so what the validation block checked is
 *    what the kernel reads;
 *  - o1p_as_float may return the caller's own array (no copy when dtype and
 *    layout already fit): use it only for values, whose concurrent change can
 *    make a result garbage but never moves a memory access;
 *  - kernels that take index arrays from other kernels re-check each index
 *    where they use it, and never size a buffer from one pass over memory and
 *    fill it in another pass without checking the count again.
 * Sizes: every product or sum of caller-given sizes goes through o1p.h's
 * checked helpers (o1p_check_product here).
 */
#ifndef O1P_ARRAYS_H
#define O1P_ARRAYS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
/* module.c defines O1P_ARRAY_API_OWNER: it holds NumPy's C-API table and
 * calls import_array(); every other binding file only refers to it. */
#ifndef O1P_ARRAY_API_OWNER
#define NO_IMPORT_ARRAY
#endif
#define PY_ARRAY_UNIQUE_SYMBOL o1p_ARRAY_API
#include <numpy/arrayobject.h>

#include "o1p.h"

/* Release the GIL around pure compute when the work is large enough for the
 * switch to pay off. `stmt` must not touch any Python object. */
#define O1P_GIL_THRESHOLD 4096
#define O1P_WITHOUT_GIL(work, stmt)                                  \
    do {                                                             \
        if ((o1p_int)(work) >= O1P_GIL_THRESHOLD) {                  \
            Py_BEGIN_ALLOW_THREADS stmt;                             \
            Py_END_ALLOW_THREADS                                     \
        } else {                                                     \
            stmt;                                                    \
        }                                                            \
    } while (0)

/* Accepted input kinds for o1p_as_float. */
enum { O1P_FLOAT_ONLY = 0, O1P_ALLOW_INT = 1 };

/* Any array-like of a floating dtype (float16/32/64; with O1P_ALLOW_INT also
 * bool and integers) -> C-contiguous, aligned, native array of `typenum`
 * (NPY_FLOAT32 or NPY_FLOAT64), a new reference. NOT necessarily a copy: when
 * the input already fits it is returned itself, and another thread may write
 * into it meanwhile. Values only (see the rule above). ndim >= 0 demands that
 * many dimensions. */
PyArrayObject *o1p_as_float(PyObject *obj, const char *name, int ndim, int typenum, int kinds);

/* Any array-like of an integer dtype (bool and floats are rejected) -> a
 * private (owned) C-contiguous int64 copy, always. */
PyArrayObject *o1p_as_index(PyObject *obj, const char *name, int ndim);

/* A 0/1 mask from bool, integer or floating input whose values are exactly 0
 * or 1 -> a private (owned) C-contiguous uint8 copy, always. */
PyArrayObject *o1p_as_mask(PyObject *obj, const char *name, int ndim);

/* A caller-owned float32 buffer used in place (an output, or a state the
 * caller keeps): must already be a C-contiguous, aligned, native float32
 * ndarray (no conversion: a copy would silently drop the update), writable
 * when `writable`. Its size must equal `size` (exact) or be at least `size`.
 * Returns its data, NULL with TypeError/ValueError naming it. */
float *o1p_f32_buffer(PyObject *obj, const char *name, npy_intp size, int exact, int writable);

/* A caller's output array written in place (out=, grad_*=): must be a
 * float32 ndarray of exactly `shape`, C-contiguous, aligned, native-endian
 * and writeable (no conversion: a copy would silently drop the result).
 * Returns a new reference, or NULL with TypeError (not an ndarray, wrong
 * dtype) or ValueError (shape, layout) naming it. */
PyArrayObject *o1p_out_array(PyObject *obj, const char *name, int ndim, const npy_intp *shape);

/* 1 when the memory spans of two ndarrays intersect (from their strides, so
 * views of any layout count; empty arrays never overlap). Objects that are
 * not ndarrays (lists, None) own no caller memory: 0. */
int o1p_overlap(PyObject *a, PyObject *b);
/* 0 when a (written) and b do not overlap, else ValueError
 * "<aname>: shares memory with <bname>". */
int o1p_check_disjoint(PyObject *a, const char *aname, PyObject *b, const char *bname);

/* 0 when a.shape[axis] == expect, else ValueError naming both arguments. */
int o1p_check_dim(PyArrayObject *a, const char *name, int axis, npy_intp expect,
                  const char *other);
/* 0 when both arrays have the same shape, else ValueError. */
int o1p_check_same_shape(PyArrayObject *a, const char *aname, PyArrayObject *b,
                         const char *bname);
/* 0 when the array has at least one element, else ValueError. */
int o1p_check_nonempty(PyArrayObject *a, const char *name);
/* 0 when no element is NaN (and, unless allow_inf, none is +-inf). */
int o1p_check_finite(PyArrayObject *a, const char *name, int allow_inf);
/* 0 when every element is > 0 and finite. */
int o1p_check_positive(PyArrayObject *a, const char *name);
/* 0 when every int64 element is in [lo, hi) or equals `except` (an ignore
 * index; it is always accepted, whatever its value). */
int o1p_check_index_range(PyArrayObject *a, const char *name, int64_t lo, int64_t hi,
                          int64_t except);
/* 0 when every int64 element is in [lo, hi), no exception (token ids). */
int o1p_check_ids(PyArrayObject *a, const char *name, int64_t lo, int64_t hi);
/* 0 when every size given fits a BLAS integer, else ValueError naming `name`. */
int o1p_check_blas_size(o1p_int n, const char *name);
/* 0 when a*b does not overflow int64 and fits `limit`, else ValueError. */
int o1p_check_product(o1p_int a, o1p_int b, o1p_int limit, const char *what);

/* Python scalar arguments. */
int o1p_check_finite_scalar(double x, const char *name);
/* An integer (Python int, NumPy integer, anything with __index__; not bool)
 * that fits int64 -> *out; else TypeError / ValueError naming `name`. */
int o1p_parse_int(PyObject *obj, const char *name, long long *out);
/* A real number (int, float, NumPy scalar; not bool, not str) -> *out, else
 * TypeError naming `name`. Use with "O" in PyArg_Parse so messages name it. */
int o1p_parse_double(PyObject *obj, const char *name, double *out);
/* Index of `obj` (a str) in the NULL-terminated list of ASCII choices, else
 * ValueError listing the choices (the whole string is compared: an embedded
 * NUL or a lone surrogate never matches, and is named in the error). Py_None
 * matches a choice spelled "None". */
int o1p_parse_choice(PyObject *obj, const char *name, const char *const *choices);

/* Translate a kernel status into a Python exception (for errors found during
 * compute that the validation block could not see). Returns NULL. */
PyObject *o1p_raise_status(int status, const char *what);

#endif /* O1P_ARRAYS_H */
