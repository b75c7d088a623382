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
 * typenum. A copy that cannot be made (a huge zero-stride view, sizes beyond
 * 2^63 bytes) raises MemoryError / ValueError naming the argument. */
static PyArrayObject *convert(PyArrayObject *a, int typenum, const char *name) {
    PyArray_Descr *descr = PyArray_DescrFromType(typenum);
    if (descr == NULL) return NULL;
    /* FORCECAST: the kind was checked by the caller; float64 -> float32 and
     * int -> float are the intended conversions. */
    PyArrayObject *out = (PyArrayObject *)PyArray_FromAny(
        (PyObject *)a, descr, 0, 0, NPY_ARRAY_CARRAY_RO | NPY_ARRAY_FORCECAST, NULL);
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
    out = convert(a, typenum, name);
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
    if (kind == 'u' && PyArray_ITEMSIZE(a) == 8 && PyArray_SIZE(a) > 0) {
        /* uint64 values above INT64_MAX would wrap: check the maximum first */
        PyObject *mx = PyArray_Max(a, NPY_RAVEL_AXIS, NULL);
        if (mx == NULL) goto fail;
        PyObject *mxl = PyNumber_Long(mx);
        Py_DECREF(mx);
        if (mxl == NULL) goto fail;
        unsigned long long v = PyLong_AsUnsignedLongLong(mxl);
        Py_DECREF(mxl);
        if (PyErr_Occurred()) goto fail;
        if (v > (unsigned long long)INT64_MAX) {
            PyErr_Format(PyExc_ValueError, "%s: value %llu does not fit int64", name, v);
            goto fail;
        }
    }
    out = convert(a, NPY_INT64, name);
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
        out = convert(a, NPY_UINT8, name);
        goto fail;
    }
    /* check the values are exactly 0 or 1 before narrowing to uint8 */
    f = convert(a, NPY_FLOAT64, name);
    if (f == NULL) goto fail;
    const double *v = (const double *)PyArray_DATA(f);
    npy_intp n = PyArray_SIZE(f);
    for (npy_intp i = 0; i < n; i++) {
        if (!(v[i] == 0.0 || v[i] == 1.0)) {
            char buf[32];
            O1P_FMT_DOUBLE(buf, v[i]);
            PyErr_Format(PyExc_ValueError, "%s: mask values must be 0 or 1, found %s at flat index %zd",
                         name, buf, (Py_ssize_t)i);
            goto fail;
        }
    }
    out = (PyArrayObject *)PyArray_NewLikeArray(f, NPY_CORDER, PyArray_DescrFromType(NPY_UINT8), 0);
    if (out == NULL) goto fail;
    uint8_t *o = (uint8_t *)PyArray_DATA(out);
    for (npy_intp i = 0; i < n; i++) o[i] = (uint8_t)(v[i] != 0.0);
fail:
    Py_XDECREF(f);
    Py_DECREF(a);
    return out;
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
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: expected a real number, got %s", name, Py_TYPE(obj)->tp_name);
        return -1;
    }
    *out = v;
    return 0;
}

int o1p_parse_choice(PyObject *obj, const char *name, const char *const *choices) {
    const char *s = NULL;
    if (obj == Py_None) {
        s = "None";
    } else if (PyUnicode_Check(obj)) {
        s = PyUnicode_AsUTF8(obj);
        if (s == NULL) return -1;
    } else {
        PyErr_Format(PyExc_TypeError, "%s: expected a string, got %s", name, Py_TYPE(obj)->tp_name);
        return -1;
    }
    for (int i = 0; choices[i] != NULL; i++)
        if (strcmp(s, choices[i]) == 0) return i;
    PyObject *list = PyList_New(0);
    for (int i = 0; list && choices[i] != NULL; i++) {
        PyObject *c = PyUnicode_FromString(choices[i]);
        if (c) PyList_Append(list, c);
        Py_XDECREF(c);
    }
    PyErr_Format(PyExc_ValueError, "%s: must be one of %R, got %R", name, list, obj);
    Py_XDECREF(list);
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
