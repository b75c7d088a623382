/* arrays.h: argument coercion and validation for the bindings (the role of
 * NumPy's arr_interp). Each binding runs one validation block built from these
 * helpers, then hands bare pointers to a kernel. Every helper that fails sets a
 * ValueError or TypeError whose message starts with the argument's name and
 * returns NULL / -1. Inputs are never modified: conversions copy.
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
 * bool and integers) -> new C-contiguous, aligned, native array of `typenum`
 * (NPY_FLOAT32 or NPY_FLOAT64). ndim >= 0 demands that many dimensions. */
PyArrayObject *o1p_as_float(PyObject *obj, const char *name, int ndim, int typenum, int kinds);

/* Any array-like of an integer dtype (bool and floats are rejected) -> new
 * C-contiguous int64 array. */
PyArrayObject *o1p_as_index(PyObject *obj, const char *name, int ndim);

/* A 0/1 mask from bool, integer or floating input whose values are exactly 0
 * or 1 -> new C-contiguous uint8 array. */
PyArrayObject *o1p_as_mask(PyObject *obj, const char *name, int ndim);

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
/* A real number (int, float, NumPy scalar; not bool, not str) -> *out, else
 * TypeError naming `name`. Use with "O" in PyArg_Parse so messages name it. */
int o1p_parse_double(PyObject *obj, const char *name, double *out);
/* Index of `obj` (a str) in the NULL-terminated list, else ValueError listing
 * the choices. Py_None matches a choice spelled "None". */
int o1p_parse_choice(PyObject *obj, const char *name, const char *const *choices);

/* Translate a kernel status into a Python exception (for errors found during
 * compute that the validation block could not see). Returns NULL. */
PyObject *o1p_raise_status(int status, const char *what);

#endif /* O1P_ARRAYS_H */
