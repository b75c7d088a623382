/* arrays.c: the coercion and validation helpers declared in arrays.h. */
#include "arrays.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "blas.h"

static const char *kind_name(char kind) {
    switch (kind) {
    case 'b': return "bool";
    case 'i': return "signed integer";
    case 'u': return "unsigned integer";
    case 'f': return "floating";
    case 'c': return "complex";
    case 'O': return "object";
    case 'S': case 'U': return "string";
    case 'M': case 'm': return "datetime";
    case 'V': return "void/structured";
    default: return "unsupported";
    }
}

/* Turn any array-like into an ndarray without choosing a dtype yet, so the
 * dtype check below sees what the caller really passed. */
static PyArrayObject *as_any_array(PyObject *obj, const char *name) {
    if (obj == NULL || obj == Py_None) {
        PyErr_Format(PyExc_TypeError, "%s: expected an array, got None", name);
        return NULL;
    }
    PyArrayObject *a = (PyArrayObject *)PyArray_FromAny(obj, NULL, 0, 0, 0, NULL);
    if (a == NULL) {
        if (PyErr_ExceptionMatches(PyExc_ValueError) || PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyObject *t, *v, *tb;
            PyErr_Fetch(&t, &v, &tb);
            PyErr_Format(PyExc_TypeError, "%s: cannot be converted to an array (%S)", name,
                         v ? v : Py_None);
            Py_XDECREF(t);
            Py_XDECREF(v);
            Py_XDECREF(tb);
        }
        return NULL;
    }
    return a;
}

static PyObject *shape_of(PyArrayObject *a) {
    return PyArray_IntTupleFromIntp(PyArray_NDIM(a), PyArray_DIMS(a));
}

/* Doubles go into messages through a buffer: PyErr_Format has no %g. */
#define O1P_FMT_DOUBLE(buf, x) snprintf((buf), sizeof(buf), "%.9g", (double)(x))

static int check_ndim(PyArrayObject *a, const char *name, int ndim) {
    if (ndim >= 0 && PyArray_NDIM(a) != ndim) {
        PyObject *shape = shape_of(a);
        PyErr_Format(PyExc_ValueError, "%s: expected a %d-D array, got %d-D with shape %R",
                     name, ndim, PyArray_NDIM(a), shape);
        Py_XDECREF(shape);
        return -1;
    }
    return 0;
}

/* Convert `a` (already dtype-checked) to a C-contiguous aligned array of
 * typenum; with `owned`, always a fresh copy that nothing else refers to.
 * A copy that cannot be made (a huge zero-stride view, sizes beyond 2^63
 * bytes) raises MemoryError / ValueError naming the argument. */
static PyArrayObject *convert(PyArrayObject *a, int typenum, const char *name, int owned) {
    PyArray_Descr *descr = PyArray_DescrFromType(typenum);
    if (descr == NULL) return NULL;
    /* FORCECAST: the kind was checked by the caller; float64 -> float32 and
     * int -> float are the intended conversions. */
    int flags = NPY_ARRAY_CARRAY_RO | NPY_ARRAY_FORCECAST | (owned ? NPY_ARRAY_ENSURECOPY : 0);
    PyArrayObject *out = (PyArrayObject *)PyArray_FromAny((PyObject *)a, descr, 0, 0, flags, NULL);
    if (out == NULL && (PyErr_ExceptionMatches(PyExc_MemoryError) || PyErr_ExceptionMatches(PyExc_ValueError))) {
        PyObject *t, *v, *tb, *shape = shape_of(a);
        PyErr_Fetch(&t, &v, &tb);
        PyErr_Format(PyErr_GivenExceptionMatches(t, PyExc_MemoryError) ? PyExc_MemoryError : PyExc_ValueError,
                     "%s: cannot make its C-contiguous copy of shape %R (%S)", name,
                     shape ? shape : Py_None, v ? v : Py_None);
        Py_XDECREF(shape);
        Py_XDECREF(t);
        Py_XDECREF(v);
        Py_XDECREF(tb);
    }
    return out;
}

PyArrayObject *o1p_as_float(PyObject *obj, const char *name, int ndim, int typenum, int kinds) {
    PyArrayObject *a = as_any_array(obj, name), *out = NULL;
    if (a == NULL) return NULL;
    char kind = PyArray_DESCR(a)->kind;
    int ok = kind == 'f' || (kinds == O1P_ALLOW_INT && (kind == 'i' || kind == 'u' || kind == 'b'));
    if (!ok) {
        PyErr_Format(PyExc_TypeError, "%s: expected a %s array, got dtype %s (%s)", name,
                     kinds == O1P_ALLOW_INT ? "numeric (float, int or bool)" : "floating-point",
                     PyArray_DESCR(a)->typeobj->tp_name, kind_name(kind));
        goto fail;
    }
    if (check_ndim(a, name, ndim) < 0) goto fail;
    out = convert(a, typenum, name, 0);
fail:
    Py_DECREF(a);
    return out;
}

PyArrayObject *o1p_as_index(PyObject *obj, const char *name, int ndim) {
    PyArrayObject *a = as_any_array(obj, name), *out = NULL;
    if (a == NULL) return NULL;
    char kind = PyArray_DESCR(a)->kind;
    /* an empty list becomes float64: accept it as an empty index array */
    int empty_list = PyArray_SIZE(a) == 0 && !PyArray_Check(obj);
    if (!(kind == 'i' || kind == 'u' || empty_list)) {
        PyErr_Format(PyExc_TypeError, "%s: expected an integer array, got dtype %s (%s)", name,
                     PyArray_DESCR(a)->typeobj->tp_name, kind_name(kind));
        goto fail;
    }
    if (check_ndim(a, name, ndim) < 0) goto fail;
    if (kind == 'u' && PyArray_ITEMSIZE(a) == 8) {
        /* uint64 values above INT64_MAX would wrap: check them on a private
         * copy (so they cannot change after the check), then narrow it */
        PyArrayObject *u = convert(a, NPY_UINT64, name, 1);
        if (u == NULL) goto fail;
        const uint64_t *v = (const uint64_t *)PyArray_DATA(u);
        for (npy_intp i = 0, n = PyArray_SIZE(u); i < n; i++) {
            if (v[i] > (uint64_t)INT64_MAX) {
                PyErr_Format(PyExc_ValueError, "%s: value %llu does not fit int64", name,
                             (unsigned long long)v[i]);
                Py_DECREF(u);
                goto fail;
            }
        }
        out = convert(u, NPY_INT64, name, 1);
        Py_DECREF(u);
        goto fail;
    }
    out = convert(a, NPY_INT64, name, 1);
fail:
    Py_DECREF(a);
    return out;
}

PyArrayObject *o1p_as_mask(PyObject *obj, const char *name, int ndim) {
    PyArrayObject *a = as_any_array(obj, name), *f = NULL, *out = NULL;
    if (a == NULL) return NULL;
    char kind = PyArray_DESCR(a)->kind;
    if (!(kind == 'b' || kind == 'i' || kind == 'u' || kind == 'f')) {
        PyErr_Format(PyExc_TypeError, "%s: expected a bool or 0/1 numeric mask, got dtype %s (%s)",
                     name, PyArray_DESCR(a)->typeobj->tp_name, kind_name(kind));
        goto fail;
    }
    if (check_ndim(a, name, ndim) < 0) goto fail;
    if (kind == 'b') {
        out = convert(a, NPY_UINT8, name, 1);
        goto fail;
    }
    /* check the values are exactly 0 or 1 while narrowing to uint8: one read
     * of each value (f may be the caller's own float64 array) */
    f = convert(a, NPY_FLOAT64, name, 0);
    if (f == NULL) goto fail;
    out = (PyArrayObject *)PyArray_NewLikeArray(f, NPY_CORDER, PyArray_DescrFromType(NPY_UINT8), 0);
    if (out == NULL) goto fail;
    const double *v = (const double *)PyArray_DATA(f);
    uint8_t *o = (uint8_t *)PyArray_DATA(out);
    for (npy_intp i = 0, n = PyArray_SIZE(f); i < n; i++) {
        double x = v[i];
        if (!(x == 0.0 || x == 1.0)) {
            char buf[32];
            O1P_FMT_DOUBLE(buf, x);
            PyErr_Format(PyExc_ValueError, "%s: mask values must be 0 or 1, found %s at flat index %zd",
                         name, buf, (Py_ssize_t)i);
            Py_CLEAR(out);
            goto fail;
        }
        o[i] = (uint8_t)(x != 0.0);
    }
fail:
    Py_XDECREF(f);
    Py_DECREF(a);
    return out;
}

float *o1p_f32_buffer(PyObject *obj, const char *name, npy_intp size, int exact, int writable) {
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s: expected a float32 NumPy array, got %s", name,
                     Py_TYPE(obj)->tp_name);
        return NULL;
    }
    PyArrayObject *a = (PyArrayObject *)obj;
    if (PyArray_TYPE(a) != NPY_FLOAT32 || !PyArray_ISNOTSWAPPED(a)) {
        PyErr_Format(PyExc_TypeError, "%s: expected dtype float32 (native byte order), got %S", name,
                     (PyObject *)PyArray_DESCR(a));
        return NULL;
    }
    if (!PyArray_IS_C_CONTIGUOUS(a) || !PyArray_ISALIGNED(a)) {
        PyErr_Format(PyExc_ValueError, "%s: must be C-contiguous and aligned (it is used in place)", name);
        return NULL;
    }
    if (writable && !PyArray_ISWRITEABLE(a)) {
        PyErr_Format(PyExc_ValueError, "%s: must be writable (it is updated in place)", name);
        return NULL;
    }
    npy_intp n = PyArray_SIZE(a);
    if ((exact && n != size) || (!exact && n < size)) {
        PyErr_Format(PyExc_ValueError, "%s: expected %s%zd float32 elements, got %zd", name,
                     exact ? "" : "at least ", (Py_ssize_t)size, (Py_ssize_t)n);
        return NULL;
    }
    return (float *)PyArray_DATA(a);
}

/* [*lo, *hi): the bytes an array's elements may occupy, from its strides.
 * Returns 0 for an empty array. */
static int byte_span(PyArrayObject *a, const char **lo, const char **hi) {
    if (PyArray_SIZE(a) == 0 || PyArray_ITEMSIZE(a) == 0) return 0;
    const char *p = PyArray_BYTES(a), *l = p, *h = p;
    for (int k = 0; k < PyArray_NDIM(a); k++) {
        npy_intp ext = PyArray_STRIDE(a, k) * (PyArray_DIM(a, k) - 1);
        if (ext < 0)
            l += ext;
        else
            h += ext;
    }
    *lo = l;
    *hi = h + PyArray_ITEMSIZE(a);
    return 1;
}

PyArrayObject *o1p_out_array(PyObject *obj, const char *name, int ndim, const npy_intp *shape) {
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s: expected a numpy.ndarray to write into, got %s", name,
                     Py_TYPE(obj)->tp_name);
        return NULL;
    }
    PyArrayObject *a = (PyArrayObject *)obj;
    if (PyArray_TYPE(a) != NPY_FLOAT32) {
        PyErr_Format(PyExc_TypeError, "%s: expected a float32 array, got dtype %s", name,
                     PyArray_DESCR(a)->typeobj->tp_name);
        return NULL;
    }
    int same = PyArray_NDIM(a) == ndim;
    for (int k = 0; same && k < ndim; k++) same = PyArray_DIM(a, k) == shape[k];
    if (!same) {
        PyObject *want = PyArray_IntTupleFromIntp(ndim, (npy_intp *)shape);
        PyObject *got = shape_of(a);
        if (want && got) PyErr_Format(PyExc_ValueError, "%s: expected shape %R, got %R", name, want, got);
        Py_XDECREF(got);
        Py_XDECREF(want);
        return NULL;
    }
    if (!PyArray_ISCARRAY(a) || !PyArray_ISNOTSWAPPED(a)) {
        PyErr_Format(PyExc_ValueError,
                     "%s: must be C-contiguous, aligned, native-endian and writeable (it is "
                     "written in place)",
                     name);
        return NULL;
    }
    Py_INCREF(a);
    return a;
}

int o1p_overlap(PyObject *a, PyObject *b) {
    const char *alo, *ahi, *blo, *bhi;
    if (a == NULL || b == NULL || !PyArray_Check(a) || !PyArray_Check(b)) return 0;
    if (!byte_span((PyArrayObject *)a, &alo, &ahi) || !byte_span((PyArrayObject *)b, &blo, &bhi))
        return 0;
    return alo < bhi && blo < ahi;
}

int o1p_check_disjoint(PyObject *a, const char *aname, PyObject *b, const char *bname) {
    if (!o1p_overlap(a, b)) return 0;
    PyErr_Format(PyExc_ValueError, "%s: shares memory with %s", aname, bname);
    return -1;
}

int o1p_check_dim(PyArrayObject *a, const char *name, int axis, npy_intp expect,
                  const char *other) {
    if (PyArray_DIM(a, axis) == expect) return 0;
    PyObject *shape = shape_of(a);
    PyErr_Format(PyExc_ValueError, "%s: shape %R does not match %s (axis %d should be %zd)", name,
                 shape, other, axis, (Py_ssize_t)expect);
    Py_XDECREF(shape);
    return -1;
}

int o1p_check_same_shape(PyArrayObject *a, const char *aname, PyArrayObject *b,
                         const char *bname) {
    if (PyArray_SAMESHAPE(a, b)) return 0;
    PyObject *sa = shape_of(a), *sb = shape_of(b);
    PyErr_Format(PyExc_ValueError, "%s: shape %R does not match %s shape %R", aname, sa, bname, sb);
    Py_XDECREF(sa);
    Py_XDECREF(sb);
    return -1;
}

int o1p_check_nonempty(PyArrayObject *a, const char *name) {
    if (PyArray_SIZE(a) > 0) return 0;
    PyObject *shape = shape_of(a);
    PyErr_Format(PyExc_ValueError, "%s: must not be empty (shape %R)", name, shape);
    Py_XDECREF(shape);
    return -1;
}

int o1p_check_finite(PyArrayObject *a, const char *name, int allow_inf) {
    npy_intp n = PyArray_SIZE(a);
    if (PyArray_TYPE(a) == NPY_FLOAT32) {
        const float *v = (const float *)PyArray_DATA(a);
        for (npy_intp i = 0; i < n; i++) {
            if (isnan(v[i]) || (!allow_inf && isinf(v[i]))) {
                PyErr_Format(PyExc_ValueError, "%s: contains %s at flat index %zd", name,
                             isnan(v[i]) ? "NaN" : "inf", (Py_ssize_t)i);
                return -1;
            }
        }
    } else {
        const double *v = (const double *)PyArray_DATA(a);
        for (npy_intp i = 0; i < n; i++) {
            if (isnan(v[i]) || (!allow_inf && isinf(v[i]))) {
                PyErr_Format(PyExc_ValueError, "%s: contains %s at flat index %zd", name,
                             isnan(v[i]) ? "NaN" : "inf", (Py_ssize_t)i);
                return -1;
            }
        }
    }
    return 0;
}

int o1p_check_positive(PyArrayObject *a, const char *name) {
    if (o1p_check_finite(a, name, 0) < 0) return -1;
    npy_intp n = PyArray_SIZE(a);
    for (npy_intp i = 0; i < n; i++) {
        double x = PyArray_TYPE(a) == NPY_FLOAT32 ? ((const float *)PyArray_DATA(a))[i]
                                                   : ((const double *)PyArray_DATA(a))[i];
        if (!(x > 0)) {
            char buf[32];
            O1P_FMT_DOUBLE(buf, x);
            PyErr_Format(PyExc_ValueError, "%s: must be > 0, found %s at flat index %zd", name, buf,
                         (Py_ssize_t)i);
            return -1;
        }
    }
    return 0;
}

int o1p_check_index_range(PyArrayObject *a, const char *name, int64_t lo, int64_t hi,
                          int64_t except) {
    const int64_t *v = (const int64_t *)PyArray_DATA(a);
    npy_intp n = PyArray_SIZE(a);
    for (npy_intp i = 0; i < n; i++) {
        if ((v[i] < lo || v[i] >= hi) && v[i] != except) {
            PyErr_Format(PyExc_ValueError,
                         "%s: value %lld at flat index %zd is outside [%lld, %lld) and is not "
                         "the ignore index %lld",
                         name, (long long)v[i], (Py_ssize_t)i, (long long)lo, (long long)hi,
                         (long long)except);
            return -1;
        }
    }
    return 0;
}

int o1p_check_ids(PyArrayObject *a, const char *name, int64_t lo, int64_t hi) {
    const int64_t *v = (const int64_t *)PyArray_DATA(a);
    npy_intp n = PyArray_SIZE(a);
    for (npy_intp i = 0; i < n; i++) {
        if (v[i] < lo || v[i] >= hi) {
            PyErr_Format(PyExc_ValueError, "%s: value %lld at flat index %zd is outside [%lld, %lld)",
                         name, (long long)v[i], (Py_ssize_t)i, (long long)lo, (long long)hi);
            return -1;
        }
    }
    return 0;
}

int o1p_check_blas_size(o1p_int n, const char *name) {
    if (n <= O1P_BLAS_INT_MAX) return 0;
    PyErr_Format(PyExc_ValueError, "%s: size %lld exceeds the BLAS integer limit %d", name,
                 (long long)n, O1P_BLAS_INT_MAX);
    return -1;
}

int o1p_check_product(o1p_int a, o1p_int b, o1p_int limit, const char *what) {
    o1p_int p;
    if (!o1p_mul_overflow(a, b, &p) && p <= limit) return 0;
    PyErr_Format(PyExc_ValueError, "%s: size product %lld x %lld overflows (limit %lld)", what,
                 (long long)a, (long long)b, (long long)limit);
    return -1;
}

int o1p_check_finite_scalar(double x, const char *name) {
    if (isfinite(x)) return 0;
    char buf[32];
    O1P_FMT_DOUBLE(buf, x);
    PyErr_Format(PyExc_ValueError, "%s: must be finite, got %s", name, buf);
    return -1;
}

int o1p_parse_double(PyObject *obj, const char *name, double *out) {
    if (PyBool_Check(obj) || !(PyFloat_Check(obj) || PyLong_Check(obj) || PyArray_IsScalar(obj, Number) ||
                               (PyArray_Check(obj) && PyArray_NDIM((PyArrayObject *)obj) == 0))) {
        PyErr_Format(PyExc_TypeError, "%s: expected a real number, got %s", name, Py_TYPE(obj)->tp_name);
        return -1;
    }
    double v = PyFloat_AsDouble(obj);
    if (v == -1.0 && PyErr_Occurred()) {
        /* only the errors a number can give are replaced; anything else
         * (KeyboardInterrupt, MemoryError, ...) propagates as it is */
        if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "%s: %R is too large for a float64", name, obj);
        } else if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s: expected a real number, got %s", name,
                         Py_TYPE(obj)->tp_name);
        }
        return -1;
    }
    *out = v;
    return 0;
}

int o1p_parse_int(PyObject *obj, const char *name, long long *out) {
    if (PyBool_Check(obj) || !PyIndex_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s: expected an int, got %s", name, Py_TYPE(obj)->tp_name);
        return -1;
    }
    PyObject *v = PyNumber_Index(obj);
    if (v == NULL) return -1;
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    Py_DECREF(v);
    if (x == -1 && PyErr_Occurred()) return -1;
    if (overflow) {
        PyErr_Format(PyExc_ValueError, "%s: %R does not fit int64", name, obj);
        return -1;
    }
    *out = x;
    return 0;
}

/* 1 when the str `u` is exactly the ASCII string `c` (code point by code
 * point, whole length: no encoding, so lone surrogates are fine). */
static int str_equals_ascii(PyObject *u, const char *c) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(u);
    if ((size_t)n != strlen(c)) return 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (PyUnicode_READ_CHAR(u, i) != (Py_UCS4)(unsigned char)c[i]) return 0;
    return 1;
}

int o1p_parse_choice(PyObject *obj, const char *name, const char *const *choices) {
    if (obj != Py_None && !PyUnicode_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s: expected a string, got %s", name, Py_TYPE(obj)->tp_name);
        return -1;
    }
    for (int i = 0; choices[i] != NULL; i++) {
        if (obj == Py_None ? strcmp(choices[i], "None") == 0 : str_equals_ascii(obj, choices[i]))
            return i;
    }
    PyObject *list = PyList_New(0);
    for (int i = 0; list && choices[i] != NULL; i++) {
        PyObject *c = PyUnicode_FromString(choices[i]);
        if (c == NULL || PyList_Append(list, c) < 0) Py_CLEAR(list);
        Py_XDECREF(c);
    }
    if (list == NULL) return -1;
    PyErr_Format(PyExc_ValueError, "%s: must be one of %R, got %R", name, list, obj);
    Py_DECREF(list);
    return -1;
}

PyObject *o1p_raise_status(int status, const char *what) {
    switch (status) {
    case O1P_ENOMEM: PyErr_Format(PyExc_MemoryError, "%s: out of memory", what); break;
    case O1P_EINDEX: PyErr_Format(PyExc_ValueError, "%s: index out of range", what); break;
    case O1P_EVALUE: PyErr_Format(PyExc_ValueError, "%s", what); break;
    default: PyErr_Format(PyExc_RuntimeError, "%s: internal error (status %d)", what, status);
    }
    return NULL;
}
