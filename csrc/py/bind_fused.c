/* bind_fused.c: Python bindings of kernels/fused.c (LM head + token log-probs
 * without materialising the logits). One validation block per function, then
 * bare pointers to the kernel. */
#include "arrays.h"

#include <string.h>

#include "bind.h"
#include "fused.h"

/* Before converting (which may copy) a 2-D ndarray, check that its width fits
 * the BLAS integer and that a float32 copy of it is addressable, so that a
 * huge zero-stride view fails with a named error instead of an allocation. */
static int precheck_matrix(PyObject *obj, const char *name) {
    if (!PyArray_Check(obj) || PyArray_NDIM((PyArrayObject *)obj) != 2) return 0;
    npy_intp r = PyArray_DIM((PyArrayObject *)obj, 0), c = PyArray_DIM((PyArrayObject *)obj, 1);
    if (o1p_check_blas_size(c, name) < 0) return -1;
    return o1p_check_product(r, c, NPY_MAX_INTP / (npy_intp)sizeof(float), name);
}

/* o1p_as_float for hidden / weight, whose float32 copy (when one is needed)
 * may not fit in memory: the MemoryError then names the argument. */
static PyArrayObject *as_float_matrix(PyObject *obj, const char *name) {
    PyArrayObject *a = o1p_as_float(obj, name, 2, NPY_FLOAT32, O1P_FLOAT_ONLY);
    if (a == NULL && PyErr_ExceptionMatches(PyExc_MemoryError)) {
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        PyErr_Format(PyExc_MemoryError, "%s: cannot allocate its float32 C-contiguous copy (%S)",
                     name, v ? v : Py_None);
        Py_XDECREF(t);
        Py_XDECREF(v);
        Py_XDECREF(tb);
    }
    return a;
}

/* hidden[N,d], weight[V,d], targets[N] in [0,V) or ignore_index, bias[V] or
 * None (no NaN, no +inf; -inf masks a token), temperature > 0. */
typedef struct {
    PyArrayObject *hidden, *weight, *targets, *bias;
    npy_intp N, d, V;
    float temperature;
    int64_t ignore_index;
} fused_args;

static void fused_args_clear(fused_args *a) {
    Py_CLEAR(a->hidden);
    Py_CLEAR(a->weight);
    Py_CLEAR(a->targets);
    Py_CLEAR(a->bias);
}

static int parse_common(fused_args *a, PyObject *hidden_obj, PyObject *weight_obj,
                        PyObject *targets_obj, PyObject *temp_obj, PyObject *ignore_obj,
                        PyObject *bias_obj) {
    double temperature;
    if (o1p_parse_double(temp_obj, "temperature", &temperature) < 0) return -1;
    if (!(temperature > 0.0) || !isfinite(temperature) || !((float)temperature > 0.0f) ||
        !isfinite(1.0f / (float)temperature) || !isfinite((float)temperature)) {
        PyErr_Format(PyExc_ValueError,
                     "temperature: must be a positive finite number representable in float32 "
                     "(with a finite inverse), got %R",
                     temp_obj);
        return -1;
    }
    a->temperature = (float)temperature;
    long long ig;
    if (o1p_parse_int(ignore_obj, "ignore_index", &ig) < 0) return -1;
    a->ignore_index = (int64_t)ig;

    if (precheck_matrix(hidden_obj, "hidden") < 0 || precheck_matrix(weight_obj, "weight") < 0)
        return -1;
    a->hidden = as_float_matrix(hidden_obj, "hidden");
    if (a->hidden == NULL) return -1;
    a->weight = as_float_matrix(weight_obj, "weight");
    if (a->weight == NULL) return -1;
    a->N = PyArray_DIM(a->hidden, 0);
    a->d = PyArray_DIM(a->hidden, 1);
    a->V = PyArray_DIM(a->weight, 0);
    if (o1p_check_dim(a->weight, "weight", 1, a->d, "hidden (the hidden width d)") < 0 ||
        o1p_check_blas_size(a->d, "hidden") < 0)
        return -1;
    a->targets = o1p_as_index(targets_obj, "targets", 1);
    if (a->targets == NULL) return -1;
    if (o1p_check_dim(a->targets, "targets", 0, a->N, "hidden (one target per row)") < 0 ||
        o1p_check_index_range(a->targets, "targets", 0, a->V, a->ignore_index) < 0)
        return -1;
    if (bias_obj != Py_None) {
        a->bias = o1p_as_float(bias_obj, "bias", 1, NPY_FLOAT32, O1P_FLOAT_ONLY);
        if (a->bias == NULL) return -1;
        if (o1p_check_dim(a->bias, "bias", 0, a->V, "weight (one bias per vocabulary row)") < 0 ||
            o1p_check_finite(a->bias, "bias", 1) < 0)
            return -1;
        const float *b = (const float *)PyArray_DATA(a->bias);
        for (npy_intp j = 0; j < a->V; j++) {
            if (b[j] == INFINITY) {
                PyErr_Format(PyExc_ValueError,
                             "bias: contains +inf at index %zd (only -inf, which masks a token, "
                             "is allowed)",
                             (Py_ssize_t)j);
                return -1;
            }
        }
    }
    return 0;
}

/* Multiply-adds of one pass, saturated (only used for the GIL threshold). */
static o1p_int work_of(const fused_args *a) {
    double w = (double)a->N * (double)a->V * (double)(a->d > 0 ? a->d : 1);
    return w > 4e18 ? (o1p_int)4e18 : (o1p_int)w;
}

static const float *ptr_or_null(PyArrayObject *a) {
    return a ? (const float *)PyArray_DATA(a) : NULL;
}

static PyObject *py_fused_linear_logprobs(PyObject *self, PyObject *args, PyObject *kwds) {
    (void)self;
    static char *kwlist[] = {"hidden", "weight", "targets", "temperature", "ignore_index", "bias", NULL};
    PyObject *hidden_obj, *weight_obj, *targets_obj, *temp_obj, *ignore_obj, *bias_obj = Py_None;
    fused_args a = {0};
    PyArrayObject *logp = NULL, *entropy = NULL, *lse = NULL;
    PyObject *result = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOO|O:fused_linear_logprobs", kwlist,
                                     &hidden_obj, &weight_obj, &targets_obj, &temp_obj, &ignore_obj,
                                     &bias_obj))
        return NULL;
    if (parse_common(&a, hidden_obj, weight_obj, targets_obj, temp_obj, ignore_obj, bias_obj) < 0)
        goto fail;
    logp = (PyArrayObject *)PyArray_EMPTY(1, &a.N, NPY_FLOAT32, 0);
    entropy = (PyArrayObject *)PyArray_EMPTY(1, &a.N, NPY_FLOAT32, 0);
    lse = (PyArrayObject *)PyArray_EMPTY(1, &a.N, NPY_FLOAT32, 0);
    if (!logp || !entropy || !lse) goto fail;
    int st;
    O1P_WITHOUT_GIL(work_of(&a),
                    st = fused_logprobs_forward(
                        a.N, a.d, a.V, (const float *)PyArray_DATA(a.hidden),
                        (const float *)PyArray_DATA(a.weight), ptr_or_null(a.bias),
                        (const int64_t *)PyArray_DATA(a.targets), a.ignore_index, a.temperature,
                        (float *)PyArray_DATA(logp), (float *)PyArray_DATA(entropy),
                        (float *)PyArray_DATA(lse)));
    if (st == O1P_EVALUE) {
        PyErr_SetString(PyExc_ValueError,
                        "hidden: the logits (hidden @ weight.T + bias) / temperature of some row "
                        "contain inf or NaN, or are all -inf; check hidden, weight and bias for "
                        "non-finite or huge values");
        goto fail;
    }
    if (st != O1P_OK) {
        o1p_raise_status(st, "fused_linear_logprobs");
        goto fail;
    }
    result = Py_BuildValue("(OOO)", logp, entropy, lse);
fail:
    fused_args_clear(&a);
    Py_XDECREF(logp);
    Py_XDECREF(entropy);
    Py_XDECREF(lse);
    return result;
}

/* A gradient output: None -> new zeros of `shape`; else the caller's array,
 * checked by o1p_out_array (it is accumulated into in place). Returns a new
 * reference. */
static PyArrayObject *grad_output(PyObject *obj, const char *name, int ndim, npy_intp *shape) {
    if (obj == Py_None) return (PyArrayObject *)PyArray_ZEROS(ndim, shape, NPY_FLOAT32, 0);
    return o1p_out_array(obj, name, ndim, shape);
}

/* The caller's outputs as they were before the kernel: a failing call puts
 * them back (it must leave its outputs unchanged). NULL entries: nothing to
 * keep (an output the binding made itself, or none). */
static int keep_outputs(PyArrayObject *const *outs, PyObject *const *given, PyArrayObject **kept, int n) {
    for (int o = 0; o < n; o++) {
        kept[o] = NULL;
        if (outs[o] == NULL || given[o] == Py_None) continue;
        kept[o] = (PyArrayObject *)PyArray_NewCopy(outs[o], NPY_CORDER);
        if (kept[o] == NULL) return -1;
    }
    return 0;
}

static void restore_outputs(PyArrayObject *const *outs, PyArrayObject *const *kept, int n) {
    for (int o = 0; o < n; o++)
        if (kept[o] != NULL)
            memcpy(PyArray_DATA(outs[o]), PyArray_DATA(kept[o]), (size_t)PyArray_NBYTES(kept[o]));
}

static PyObject *py_fused_linear_logprobs_backward(PyObject *self, PyObject *args, PyObject *kwds) {
    (void)self;
    static char *kwlist[] = {"hidden",       "weight",       "targets",   "lse",
                             "entropy",      "grad_logp",    "grad_entropy", "temperature",
                             "ignore_index", "bias",         "grad_hidden", "grad_weight",
                             "grad_bias",    NULL};
    PyObject *hidden_obj, *weight_obj, *targets_obj, *lse_obj, *ent_obj, *gl_obj, *ge_obj;
    PyObject *temp_obj, *ignore_obj, *bias_obj = Py_None, *gh_obj = Py_None, *gw_obj = Py_None,
                                     *gb_obj = Py_None;
    fused_args a = {0};
    PyArrayObject *lse = NULL, *ent = NULL, *gl = NULL, *ge = NULL;
    PyArrayObject *gh = NULL, *gw = NULL, *gb = NULL, *kept[3] = {NULL, NULL, NULL};
    PyObject *result = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOOOOOO|OOOO:fused_linear_logprobs_backward",
                                     kwlist, &hidden_obj, &weight_obj, &targets_obj, &lse_obj,
                                     &ent_obj, &gl_obj, &ge_obj, &temp_obj, &ignore_obj, &bias_obj,
                                     &gh_obj, &gw_obj, &gb_obj))
        return NULL;
    if (parse_common(&a, hidden_obj, weight_obj, targets_obj, temp_obj, ignore_obj, bias_obj) < 0)
        goto fail;
    lse = o1p_as_float(lse_obj, "lse", 1, NPY_FLOAT32, O1P_FLOAT_ONLY);
    if (lse == NULL || o1p_check_dim(lse, "lse", 0, a.N, "hidden (one per row)") < 0) goto fail;
    ent = o1p_as_float(ent_obj, "entropy", 1, NPY_FLOAT32, O1P_FLOAT_ONLY);
    if (ent == NULL || o1p_check_dim(ent, "entropy", 0, a.N, "hidden (one per row)") < 0) goto fail;
    gl = o1p_as_float(gl_obj, "grad_logp", 1, NPY_FLOAT32, O1P_FLOAT_ONLY);
    if (gl == NULL || o1p_check_dim(gl, "grad_logp", 0, a.N, "hidden (one per row)") < 0 ||
        o1p_check_finite(gl, "grad_logp", 0) < 0)
        goto fail;
    if (ge_obj != Py_None) {
        ge = o1p_as_float(ge_obj, "grad_entropy", 1, NPY_FLOAT32, O1P_FLOAT_ONLY);
        if (ge == NULL || o1p_check_dim(ge, "grad_entropy", 0, a.N, "hidden (one per row)") < 0 ||
            o1p_check_finite(ge, "grad_entropy", 0) < 0)
            goto fail;
    }
    /* the saved statistics of valid rows must be finite (ignored rows: any) */
    {
        const float *l = (const float *)PyArray_DATA(lse), *e = (const float *)PyArray_DATA(ent);
        const int64_t *t = (const int64_t *)PyArray_DATA(a.targets);
        for (npy_intp i = 0; i < a.N; i++) {
            if (t[i] == a.ignore_index) continue;
            if (!isfinite(l[i]) || !isfinite(e[i])) {
                PyErr_Format(PyExc_ValueError,
                             "%s: not finite at row %zd, which is not ignored (pass the stats of "
                             "the forward on the same inputs)",
                             isfinite(l[i]) ? "entropy" : "lse", (Py_ssize_t)i);
                goto fail;
            }
        }
    }
    npy_intp hshape[2] = {a.N, a.d}, wshape[2] = {a.V, a.d};
    gh = grad_output(gh_obj, "grad_hidden", 2, hshape);
    if (gh == NULL) goto fail;
    gw = grad_output(gw_obj, "grad_weight", 2, wshape);
    if (gw == NULL) goto fail;
    if (a.bias != NULL) {
        gb = grad_output(gb_obj, "grad_bias", 1, &a.V);
        if (gb == NULL) goto fail;
    } else if (gb_obj != Py_None) {
        PyErr_SetString(PyExc_ValueError, "grad_bias: given, but bias is None (there is no bias to differentiate)");
        goto fail;
    }
    /* outputs are written while inputs are read: no overlap allowed, with
     * the arrays the kernel reads nor with the caller's own input arrays
     * (targets among them: a float32 view of their memory as grad_weight
     * would overwrite them) */
    {
        PyArrayObject *outs[3] = {gh, gw, gb};
        const char *onames[3] = {"grad_hidden", "grad_weight", "grad_bias"};
        PyObject *ins[16] = {(PyObject *)a.hidden, (PyObject *)a.weight, (PyObject *)a.bias,
                             (PyObject *)a.targets, (PyObject *)lse, (PyObject *)ent,
                             (PyObject *)gl, (PyObject *)ge, hidden_obj, weight_obj, bias_obj,
                             targets_obj, lse_obj, ent_obj, gl_obj, ge_obj};
        for (int o = 0; o < 3; o++) {
            for (int i = 0; i < 16; i++) {
                if (o1p_overlap((PyObject *)outs[o], ins[i])) {
                    PyErr_Format(PyExc_ValueError, "%s: shares memory with an input array", onames[o]);
                    goto fail;
                }
            }
            for (int p = 0; p < o; p++)
                if (o1p_check_disjoint((PyObject *)outs[o], onames[o], (PyObject *)outs[p], onames[p]) < 0)
                    goto fail;
        }
    }
    PyArrayObject *outs[3] = {gh, gw, gb};
    PyObject *given[3] = {gh_obj, gw_obj, gb_obj};
    if (keep_outputs(outs, given, kept, 3) < 0) goto fail;
    int st;
    O1P_WITHOUT_GIL(work_of(&a),
                    st = fused_logprobs_backward(
                        a.N, a.d, a.V, (const float *)PyArray_DATA(a.hidden),
                        (const float *)PyArray_DATA(a.weight), ptr_or_null(a.bias),
                        (const int64_t *)PyArray_DATA(a.targets), a.ignore_index, a.temperature,
                        (const float *)PyArray_DATA(lse), (const float *)PyArray_DATA(ent),
                        (const float *)PyArray_DATA(gl), ptr_or_null(ge),
                        (float *)PyArray_DATA(gh), (float *)PyArray_DATA(gw),
                        gb ? (float *)PyArray_DATA(gb) : NULL));
    if (st != O1P_OK) restore_outputs(outs, kept, 3);
    if (st == O1P_EVALUE) {
        PyErr_SetString(PyExc_ValueError,
                        "lse: the saved statistics do not match these inputs (sum of "
                        "exp(logits - lse) is not 1: pass the stats of the forward on the same "
                        "hidden, weight, bias and temperature), or the logits contain inf or NaN");
        goto fail;
    }
    if (st != O1P_OK) {
        o1p_raise_status(st, "fused_linear_logprobs_backward");
        goto fail;
    }
    result = Py_BuildValue("(OOO)", gh, gw, gb ? (PyObject *)gb : Py_None);
fail:
    fused_args_clear(&a);
    Py_XDECREF(lse);
    Py_XDECREF(ent);
    Py_XDECREF(gl);
    Py_XDECREF(ge);
    Py_XDECREF(gh);
    Py_XDECREF(gw);
    Py_XDECREF(gb);
    for (int o = 0; o < 3; o++) Py_XDECREF(kept[o]);
    return result;
}

PyMethodDef o1p_fused_methods[] = {
    {"fused_linear_logprobs", (PyCFunction)(void (*)(void))py_fused_linear_logprobs,
     METH_VARARGS | METH_KEYWORDS,
     "fused_linear_logprobs($module, /, hidden, weight, targets, temperature, ignore_index, "
     "bias=None)\n--\n\n"
     "Token log-probs of the LM head hidden @ weight.T (+ bias) without materialising the logits "
     "-> (logp, entropy, lse), float32[N] each."},
    {"fused_linear_logprobs_backward", (PyCFunction)(void (*)(void))py_fused_linear_logprobs_backward,
     METH_VARARGS | METH_KEYWORDS,
     "fused_linear_logprobs_backward($module, /, hidden, weight, targets, lse, entropy, "
     "grad_logp, grad_entropy, temperature, ignore_index, bias=None, grad_hidden=None, "
     "grad_weight=None, grad_bias=None)\n--\n\n"
     "Gradient of fused_linear_logprobs -> (grad_hidden, grad_weight, grad_bias or None), "
     "accumulated into the given outputs."},
    {NULL, NULL, 0, NULL},
};
