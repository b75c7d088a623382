/* module.c: the o1pruner._core extension module: method tables of every
 * kernel family, thread control, and the build/runtime facts show_config()
 * prints. */
#define O1P_ARRAY_API_OWNER
#include "arrays.h"
#include "bind.h"
#include "blas.h"
#include "vmath.h"

#ifndef O1P_BUILD_CFLAGS
#define O1P_BUILD_CFLAGS "unknown"
#endif
#ifndef O1P_BUILD_BLAS
#define O1P_BUILD_BLAS "unknown"
#endif
#ifndef O1P_BUILD_VARIANT
#define O1P_BUILD_VARIANT "unknown"
#endif

static PyObject *py_set_num_threads(PyObject *self, PyObject *arg) {
    (void)self;
    long long n;
    if (o1p_parse_int(arg, "n", &n) < 0) {
        if (!PyErr_ExceptionMatches(PyExc_ValueError)) return NULL;
        PyErr_Clear(); /* only the "does not fit int64" error: name the range */
        n = -1;
    }
    if (n < 1 || n > 4096) {
        PyErr_Format(PyExc_ValueError, "n: number of threads must be in [1, 4096], got %R", arg);
        return NULL;
    }
    o1p_set_num_threads((int)n);
    Py_RETURN_NONE;
}

static PyObject *py_get_num_threads(PyObject *self, PyObject *noargs) {
    (void)self;
    (void)noargs;
    return PyLong_FromLong(o1p_get_num_threads());
}

static PyObject *py_build_info(PyObject *self, PyObject *noargs) {
    (void)self;
    (void)noargs;
#ifdef _OPENMP
    PyObject *omp = PyLong_FromLong(_OPENMP);
#else
    PyObject *omp = Py_None;
    Py_INCREF(omp);
#endif
    const char *cfg = O1P_BLAS_CONFIG(), *core = O1P_BLAS_CORENAME();
    PyObject *d = Py_BuildValue(
        "{s:s,s:s,s:s,s:i,s:s,s:s,s:s,s:s,s:N,s:i,s:i,s:s}", "blas", O1P_BUILD_BLAS, "blas_config",
        cfg ? cfg : "", "blas_corename", core ? core : "", "blas_threads", O1P_BLAS_GET_THREADS(),
        "cflags", O1P_BUILD_CFLAGS, "variant", O1P_BUILD_VARIANT, "simd", o1p_simd_level(),
        "simd_path", o1p_simd_path_name(o1p_simd_path()), "openmp",
        omp, "num_threads", o1p_get_num_threads(), "blas_int_bits", (int)(8 * sizeof(o1p_blasint)),
        "compiler", __VERSION__);
    return d;
}

/* C = op(A) op(B) in float32 through the linked BLAS: a reference point for
 * benchmarks ("one plain sgemm") and a direct check that BLAS is called. */
static PyObject *py_sgemm(PyObject *self, PyObject *args, PyObject *kwds) {
    (void)self;
    static char *kwlist[] = {"a", "b", "trans_a", "trans_b", NULL};
    PyObject *a_obj, *b_obj;
    int ta = 0, tb = 0;
    PyArrayObject *a = NULL, *b = NULL, *c = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|pp:sgemm", kwlist, &a_obj, &b_obj, &ta, &tb))
        return NULL;
    a = o1p_as_float(a_obj, "a", 2, NPY_FLOAT32, O1P_FLOAT_ONLY);
    if (a == NULL) goto fail;
    b = o1p_as_float(b_obj, "b", 2, NPY_FLOAT32, O1P_FLOAT_ONLY);
    if (b == NULL) goto fail;
    npy_intp m = PyArray_DIM(a, ta ? 1 : 0), k = PyArray_DIM(a, ta ? 0 : 1);
    npy_intp kb = PyArray_DIM(b, tb ? 1 : 0), n = PyArray_DIM(b, tb ? 0 : 1);
    if (o1p_check_dim(b, "b", tb ? 1 : 0, k, "a (inner dimensions)") < 0) goto fail;
    (void)kb;
    if (o1p_check_blas_size(m, "a") < 0 || o1p_check_blas_size(n, "b") < 0 ||
        o1p_check_blas_size(k, "a") < 0 || o1p_check_product(m, n, NPY_MAX_INTP / 4, "sgemm output") < 0)
        goto fail;
    npy_intp dims[2] = {m, n};
    c = (PyArrayObject *)PyArray_ZEROS(2, dims, NPY_FLOAT32, 0);
    if (c == NULL) goto fail;
    if (m > 0 && n > 0 && k > 0) {
        const float *ap = (const float *)PyArray_DATA(a), *bp = (const float *)PyArray_DATA(b);
        float *cp = (float *)PyArray_DATA(c);
        npy_intp lda = PyArray_DIM(a, 1), ldb = PyArray_DIM(b, 1);
        Py_BEGIN_ALLOW_THREADS O1P_SGEMM(ta, tb, m, n, k, 1.0f, ap, lda, bp, ldb, 0.0f, cp, n);
        Py_END_ALLOW_THREADS
    }
fail:
    Py_XDECREF(a);
    Py_XDECREF(b);
    return (PyObject *)c;
}

/* _simd_path(level=None): the hand-dispatched path (o1p_simd_path) as its
 * name; with a level ("baseline", "x86-64-v3", "x86-64-v4") caps it first.
 * For tests that compare the paths in one process; not thread-safe against
 * kernels running at the same time (they may use either path). */
static PyObject *py_simd_path(PyObject *self, PyObject *args) {
    (void)self;
    const char *level = NULL;
    if (!PyArg_ParseTuple(args, "|z:_simd_path", &level)) return NULL;
    if (level != NULL) {
        int cap;
        if (!strcmp(level, "baseline"))
            cap = O1P_SIMD_BASE;
        else if (!strcmp(level, "x86-64-v3"))
            cap = O1P_SIMD_V3;
        else if (!strcmp(level, "x86-64-v4"))
            cap = O1P_SIMD_V4;
        else {
            PyErr_Format(PyExc_ValueError, "level: must be 'baseline', 'x86-64-v3' or 'x86-64-v4', got '%s'",
                         level);
            return NULL;
        }
        o1p_set_simd_cap(cap);
    }
    return PyUnicode_FromString(o1p_simd_path_name(o1p_simd_path()));
}

/* _expf_fast(x): o1p_expf_fast (vmath.h) element by element on a float32
 * array, for the test of its error bound against float64; also returns the
 * bound it documents. */
static PyObject *py_expf_fast(PyObject *self, PyObject *arg) {
    (void)self;
    PyArrayObject *x = o1p_as_float(arg, "x", 1, NPY_FLOAT32, O1P_FLOAT_ONLY), *y = NULL;
    if (x == NULL) return NULL;
    y = (PyArrayObject *)PyArray_EMPTY(1, PyArray_DIMS(x), NPY_FLOAT32, 0);
    if (y != NULL) {
        const float *xp = (const float *)PyArray_DATA(x);
        float *yp = (float *)PyArray_DATA(y);
        for (npy_intp i = 0; i < PyArray_DIM(x, 0); i++) yp[i] = o1p_expf_fast(xp[i]);
    }
    Py_DECREF(x);
    if (y == NULL) return NULL;
    return Py_BuildValue("(Nd)", y, (double)O1P_EXPF_FAST_MAX_REL);
}

static PyMethodDef core_methods[] = {
    {"_simd_path", py_simd_path, METH_VARARGS,
     "_simd_path($module, level=None, /)\n--\n\nThe hand-dispatched SIMD path (capped at `level` if given)."},
    {"_expf_fast", py_expf_fast, METH_O,
     "_expf_fast($module, x, /)\n--\n\n(exp of float32 x by the softmax-sum exp, its documented max relative error)."},
    {"set_num_threads", py_set_num_threads, METH_O,
     "set_num_threads($module, n, /)\n--\n\nThreads used by o1pruner's kernels and by BLAS."},
    {"get_num_threads", py_get_num_threads, METH_NOARGS, "get_num_threads($module, /)\n--\n\nThreads o1pruner's kernels use (an int)."},
    {"build_info", py_build_info, METH_NOARGS, "build_info($module, /)\n--\n\nA dict of build and runtime facts."},
    {"sgemm", (PyCFunction)(void (*)(void))py_sgemm, METH_VARARGS | METH_KEYWORDS,
     "sgemm($module, /, a, b, trans_a=False, trans_b=False)\n--\n\nop(a) @ op(b) in float32 through BLAS."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT, "_core",
    "o1pruner's C core. Use the public functions of the o1pruner package instead: they own "
    "the documentation and the defaults.",
    -1, core_methods,
};

PyMODINIT_FUNC PyInit__core(void) {
    import_array();
    o1p_runtime_init();
    PyObject *m = PyModule_Create(&core_module);
    if (m == NULL) return NULL;
    /* one line per kernel family (see bind.h) */
    PyMethodDef *tables[] = {
        o1p_rewards_methods,
        o1p_logprob_methods,
        o1p_ppo_methods,
        o1p_grader_methods,
        o1p_fused_methods,
        o1p_model_methods,
    };
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        if (PyModule_AddFunctions(m, tables[i]) < 0) {
            Py_DECREF(m);
            return NULL;
        }
    }
    return m;
}
