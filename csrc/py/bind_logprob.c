/* bind_logprob.c: Python bindings of kernels/logprob.c (token log-probs,
 * entropies, log-sum-exp and their gradient). One validation block per
 * function, then bare pointers to the kernel. */
#include "arrays.h" /* first: Python.h must precede the system headers */

#include <float.h>
#include <math.h>

#include "bind.h"
#include "logprob.h"

/* temperature: finite, > 0, and 1/temperature a normal float32 (the kernels
 * scale logits by that reciprocal). */
static int parse_temperature(PyObject *obj, double *out) {
    if (o1p_parse_double(obj, "temperature", out) < 0) return -1;
    if (o1p_check_finite_scalar(*out, "temperature") < 0) return -1;
    if (!(*out > 0.0)) {
        PyErr_SetString(PyExc_ValueError, "temperature: must be > 0");
        return -1;
    }
    double inv = 1.0 / *out;
    if (!(inv >= (double)FLT_MIN && inv <= (double)FLT_MAX)) {
        PyErr_SetString(PyExc_ValueError,
                        "temperature: 1/temperature must be a normal float32 (about 3e-38 to 8e37 "
                        "for temperature)");
        return -1;
    }
    return 0;
}

/* ignore_index: a Python or NumPy integer (not bool) that fits int64. */
static int parse_ignore_index(PyObject *obj, int64_t *out) {
    long long v;
    if (o1p_parse_int(obj, "ignore_index", &v) < 0) return -1;
    *out = (int64_t)v;
    return 0;
}

/* logits (2-D floating, non-empty) and targets (1-D integer, one per row, each
 * in [0, V) or the ignore index) -> float32 / int64 C-contiguous copies. */
static int logits_targets(PyObject *logits_obj, PyObject *targets_obj, int64_t ignore_index,
                          PyArrayObject **logits, PyArrayObject **targets) {
    *logits = o1p_as_float(logits_obj, "logits", 2, NPY_FLOAT32, O1P_FLOAT_ONLY);
    if (*logits == NULL) return -1;
    if (o1p_check_nonempty(*logits, "logits") < 0 ||
        o1p_check_product(PyArray_DIM(*logits, 0), PyArray_DIM(*logits, 1),
                          NPY_MAX_INTP / (npy_intp)sizeof(float), "logits") < 0)
        return -1;
    *targets = o1p_as_index(targets_obj, "targets", 1);
    if (*targets == NULL) return -1;
    if (o1p_check_dim(*targets, "targets", 0, PyArray_DIM(*logits, 0),
                      "logits (one target per row)") < 0 ||
        o1p_check_index_range(*targets, "targets", 0, PyArray_DIM(*logits, 1), ignore_index) < 0)
        return -1;
    return 0;
}

/* A per-row float32 array [N] that must be finite on the rows that count
 * (`kinds`: O1P_ALLOW_INT for upstream gradients, floats only for lse). */
static PyArrayObject *row_values(PyObject *obj, const char *name, int kinds, PyArrayObject *targets,
                                 int64_t ignore_index) {
    PyArrayObject *a = o1p_as_float(obj, name, 1, NPY_FLOAT32, kinds);
    if (a == NULL) return NULL;
    if (o1p_check_same_shape(a, name, targets, "targets") < 0) goto fail;
    const float *v = (const float *)PyArray_DATA(a);
    const int64_t *t = (const int64_t *)PyArray_DATA(targets);
    for (npy_intp i = 0; i < PyArray_SIZE(a); i++) {
        if (t[i] != ignore_index && !isfinite(v[i])) {
            PyErr_Format(PyExc_ValueError, "%s: contains %s at row %zd (a row that is not ignored)",
                         name, isnan(v[i]) ? "NaN" : "inf", (Py_ssize_t)i);
            goto fail;
        }
    }
    return a;
fail:
    Py_DECREF(a);
    return NULL;
}

/* After a kernel reported row i as bad: name the reason. Returns 1 (and sets
 * the error) when the logits row itself is invalid, 0 otherwise. */
static int explain_bad_logits(const float *x, npy_intp V, npy_intp i, double temperature) {
    int all_neg_inf = 1;
    double mx = -INFINITY;
    for (npy_intp j = 0; j < V; j++) {
        if (isnan(x[j])) {
            PyErr_Format(PyExc_ValueError, "logits: row %zd contains NaN (column %zd)", (Py_ssize_t)i,
                         (Py_ssize_t)j);
            return 1;
        }
        if (x[j] == INFINITY) {
            PyErr_Format(PyExc_ValueError, "logits: row %zd contains +inf (column %zd)", (Py_ssize_t)i,
                         (Py_ssize_t)j);
            return 1;
        }
        if (x[j] != -INFINITY) all_neg_inf = 0;
        if (x[j] > mx) mx = x[j];
    }
    if (all_neg_inf) {
        PyErr_Format(PyExc_ValueError, "logits: row %zd is all -inf (no token has probability > 0)",
                     (Py_ssize_t)i);
        return 1;
    }
    if (!(fabs(mx / temperature) < (double)FLT_MAX / 2)) {
        PyErr_Format(PyExc_ValueError, "logits: row %zd: logits / temperature overflows float32",
                     (Py_ssize_t)i);
        return 1;
    }
    return 0;
}

static PyObject *py_token_logprobs(PyObject *self, PyObject *args, PyObject *kwds) {
    (void)self;
    static char *kwlist[] = {"logits", "targets", "temperature", "ignore_index", NULL};
    PyObject *logits_obj, *targets_obj, *temp_obj, *ignore_obj;
    PyArrayObject *logits = NULL, *targets = NULL, *logp = NULL, *ent = NULL, *lse = NULL;
    PyObject *result = NULL;
    double temperature;
    int64_t ignore_index;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOO:token_logprobs", kwlist, &logits_obj,
                                     &targets_obj, &temp_obj, &ignore_obj))
        return NULL;
    if (parse_temperature(temp_obj, &temperature) < 0 ||
        parse_ignore_index(ignore_obj, &ignore_index) < 0)
        return NULL;
    if (logits_targets(logits_obj, targets_obj, ignore_index, &logits, &targets) < 0) goto fail;
    npy_intp N = PyArray_DIM(logits, 0), V = PyArray_DIM(logits, 1);
    logp = (PyArrayObject *)PyArray_EMPTY(1, &N, NPY_FLOAT32, 0);
    ent = (PyArrayObject *)PyArray_EMPTY(1, &N, NPY_FLOAT32, 0);
    lse = (PyArrayObject *)PyArray_EMPTY(1, &N, NPY_FLOAT32, 0);
    if (!logp || !ent || !lse) goto fail;
    const float *x = (const float *)PyArray_DATA(logits);
    int st;
    o1p_int bad = -1;
    O1P_WITHOUT_GIL(N * V, st = logprob_forward(N, V, x, (const int64_t *)PyArray_DATA(targets),
                                                ignore_index, temperature,
                                                (float *)PyArray_DATA(logp), (float *)PyArray_DATA(ent),
                                                (float *)PyArray_DATA(lse), &bad));
    if (st == O1P_EVALUE) {
        if (!explain_bad_logits(x + bad * V, V, bad, temperature))
            PyErr_Format(PyExc_ValueError, "logits: row %zd has no finite log-sum-exp", (Py_ssize_t)bad);
        goto fail;
    }
    if (st != O1P_OK) {
        o1p_raise_status(st, "targets");
        goto fail;
    }
    result = Py_BuildValue("(OOO)", logp, ent, lse);
fail:
    Py_XDECREF(logits);
    Py_XDECREF(targets);
    Py_XDECREF(logp);
    Py_XDECREF(ent);
    Py_XDECREF(lse);
    return result;
}

static PyObject *py_token_logprobs_backward(PyObject *self, PyObject *args, PyObject *kwds) {
    (void)self;
    static char *kwlist[] = {"logits",       "targets",     "lse",          "grad_logp", "grad_entropy",
                             "temperature", "ignore_index", "out",          "accumulate", NULL};
    PyObject *logits_obj, *targets_obj, *lse_obj, *gl_obj, *ge_obj, *temp_obj, *ignore_obj;
    PyObject *out_obj = Py_None;
    int accumulate = 0;
    PyArrayObject *logits = NULL, *targets = NULL, *lse = NULL, *gl = NULL, *ge = NULL, *out = NULL;
    double temperature;
    int64_t ignore_index;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOOOO|Op:token_logprobs_backward", kwlist,
                                     &logits_obj, &targets_obj, &lse_obj, &gl_obj, &ge_obj, &temp_obj,
                                     &ignore_obj, &out_obj, &accumulate))
        return NULL;
    if (accumulate && out_obj == Py_None) {
        PyErr_SetString(PyExc_ValueError, "accumulate: needs out (the array to add the gradient to)");
        return NULL;
    }
    if (parse_temperature(temp_obj, &temperature) < 0 ||
        parse_ignore_index(ignore_obj, &ignore_index) < 0)
        return NULL;
    if (logits_targets(logits_obj, targets_obj, ignore_index, &logits, &targets) < 0) goto fail;
    lse = row_values(lse_obj, "lse", O1P_FLOAT_ONLY, targets, ignore_index);
    if (lse == NULL) goto fail;
    gl = row_values(gl_obj, "grad_logp", O1P_ALLOW_INT, targets, ignore_index);
    if (gl == NULL) goto fail;
    if (ge_obj != Py_None) {
        ge = row_values(ge_obj, "grad_entropy", O1P_ALLOW_INT, targets, ignore_index);
        if (ge == NULL) goto fail;
    }
    npy_intp N = PyArray_DIM(logits, 0), V = PyArray_DIM(logits, 1);
    if (out_obj == Py_None) {
        out = (PyArrayObject *)PyArray_EMPTY(2, PyArray_DIMS(logits), NPY_FLOAT32, 0);
        if (out == NULL) goto fail;
    } else {
        /* the caller's array, checked before anything is written: a failed
         * check leaves it as it was; it must not overlap what is read */
        out = o1p_out_array(out_obj, "out", 2, PyArray_DIMS(logits));
        if (out == NULL) goto fail;
        PyObject *ins[10] = {(PyObject *)logits, (PyObject *)targets, (PyObject *)lse, (PyObject *)gl,
                             (PyObject *)ge, logits_obj, targets_obj, lse_obj, gl_obj, ge_obj};
        const char *names[10] = {"logits", "targets", "lse", "grad_logp", "grad_entropy",
                                 "logits", "targets", "lse", "grad_logp", "grad_entropy"};
        for (int i = 0; i < 10; i++)
            if (o1p_check_disjoint((PyObject *)out, "out", ins[i], names[i]) < 0) goto fail_out;
    }
    const float *x = (const float *)PyArray_DATA(logits);
    const float *lp = (const float *)PyArray_DATA(lse);
    int st;
    o1p_int bad = -1;
    O1P_WITHOUT_GIL(N * V, st = logprob_backward(N, V, x, (const int64_t *)PyArray_DATA(targets),
                                                 ignore_index, temperature, lp,
                                                 (const float *)PyArray_DATA(gl),
                                                 ge ? (const float *)PyArray_DATA(ge) : NULL,
                                                 (float *)PyArray_DATA(out), accumulate, &bad));
    if (st == O1P_EVALUE) {
        if (!explain_bad_logits(x + bad * V, V, bad, temperature)) {
            char buf[32];
            snprintf(buf, sizeof buf, "%.9g", (double)lp[bad]);
            PyErr_Format(PyExc_ValueError,
                         "lse: row %zd: lse = %s does not match the logits (sum of exp(z - lse) is "
                         "not 1); pass the lse that token_logprobs returned for these logits and "
                         "temperature",
                         (Py_ssize_t)bad, buf);
        }
        Py_CLEAR(out);
    } else if (st != O1P_OK) {
        o1p_raise_status(st, "targets");
        Py_CLEAR(out);
    }
fail:
    Py_XDECREF(logits);
    Py_XDECREF(targets);
    Py_XDECREF(lse);
    Py_XDECREF(gl);
    Py_XDECREF(ge);
    return (PyObject *)out;
fail_out:
    Py_CLEAR(out);
    goto fail;
}

PyMethodDef o1p_logprob_methods[] = {
    {"token_logprobs", (PyCFunction)(void (*)(void))py_token_logprobs, METH_VARARGS | METH_KEYWORDS,
     "token_logprobs($module, /, logits, targets, temperature, ignore_index)\n--\n\n"
     "Token log-probs, entropies and log-sum-exps of softmax(logits / temperature) -> "
     "(logp, entropy, lse), float32[N] each."},
    {"token_logprobs_backward", (PyCFunction)(void (*)(void))py_token_logprobs_backward,
     METH_VARARGS | METH_KEYWORDS,
     "token_logprobs_backward($module, /, logits, targets, lse, grad_logp, grad_entropy, "
     "temperature, ignore_index, out=None, accumulate=False)\n--\n\n"
     "Gradient of token_logprobs with respect to the logits -> float32[N, V] (`out` when given, "
     "overwritten or, with accumulate, added to)."},
    {NULL, NULL, 0, NULL},
};
