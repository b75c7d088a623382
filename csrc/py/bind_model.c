/* bind_model.c: Python bindings of kernels/model*.c (the Qwen2-style
 * transformer). The Python class o1pruner.models.TinyLM owns every buffer
 * (parameters, gradients, optimizer moments, activation arena) as NumPy
 * arrays and passes them here; the C side keeps nothing between calls. One
 * validation block per function, then bare pointers to the kernel. */
#include "arrays.h" /* Python.h first */

#include <string.h>

#include "bind.h"
#include "model.h"

/* ---- argument helpers ---------------------------------------------------- */

/* config: a tuple (vocab_size, hidden_size, intermediate_size,
 * num_hidden_layers, num_attention_heads, max_position_embeddings,
 * rms_norm_eps, rope_theta) -> *c. */
static int parse_config(PyObject *obj, model_config *c) {
    if (!PyTuple_Check(obj) || PyTuple_GET_SIZE(obj) != 8) {
        PyErr_SetString(PyExc_TypeError,
                        "config: expected a tuple (vocab_size, hidden_size, intermediate_size, "
                        "num_hidden_layers, num_attention_heads, max_position_embeddings, "
                        "rms_norm_eps, rope_theta)");
        return -1;
    }
    static const char *names[6] = {"vocab_size", "hidden_size", "intermediate_size",
                                   "num_hidden_layers", "num_attention_heads",
                                   "max_position_embeddings"};
    long long v[6];
    for (int i = 0; i < 6; i++) {
        PyObject *it = PyTuple_GET_ITEM(obj, i);
        if (PyBool_Check(it) || !PyLong_Check(it)) {
            PyErr_Format(PyExc_TypeError, "config: %s must be an int, got %s", names[i],
                         Py_TYPE(it)->tp_name);
            return -1;
        }
        v[i] = PyLong_AsLongLong(it);
        if (v[i] == -1 && PyErr_Occurred()) return -1;
        if (v[i] < 1 || v[i] > (1LL << 24)) {
            PyErr_Format(PyExc_ValueError, "config: %s must be in [1, 2^24], got %lld", names[i], v[i]);
            return -1;
        }
    }
    double eps, theta;
    if (o1p_parse_double(PyTuple_GET_ITEM(obj, 6), "config: rms_norm_eps", &eps) < 0 ||
        o1p_parse_double(PyTuple_GET_ITEM(obj, 7), "config: rope_theta", &theta) < 0)
        return -1;
    c->vocab_size = v[0];
    c->hidden_size = v[1];
    c->intermediate_size = v[2];
    c->num_layers = v[3];
    c->num_heads = v[4];
    c->max_positions = v[5];
    c->rms_norm_eps = (float)eps;
    c->rope_theta = (float)theta;
    if (c->hidden_size % c->num_heads != 0 || (c->hidden_size / c->num_heads) % 2 != 0) {
        PyErr_Format(PyExc_ValueError,
                     "config: hidden_size (%lld) must be a multiple of num_attention_heads (%lld) "
                     "with an even head size (rotary pairs)",
                     v[1], v[4]);
        return -1;
    }
    if (!(eps > 0) || !isfinite(eps) || !(c->rms_norm_eps > 0)) {
        PyErr_SetString(PyExc_ValueError, "config: rms_norm_eps must be a positive finite float");
        return -1;
    }
    if (!(theta > 0) || !isfinite(theta) || !isfinite(c->rope_theta)) {
        PyErr_SetString(PyExc_ValueError, "config: rope_theta must be a positive finite float");
        return -1;
    }
    if (model_config_check(c) != O1P_OK ||
        o1p_check_product(model_num_params(c), 4, NPY_MAX_INTP, "config: number of parameters") < 0) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "config: sizes too large");
        return -1;
    }
    return 0;
}

/* The inputs of forward and backward, validated: ids[B,T], lengths[B] from the
 * right-padded mask, targets[B,T] (optional) with real positions in [0,V) or
 * ignore_index. Values at padded positions are never read. */
typedef struct {
    PyArrayObject *ids, *mask, *targets, *lengths;
    npy_intp B, T, N;
    long long ignore_index;
    double temperature;
} batch_args;

static void batch_clear(batch_args *a) {
    Py_XDECREF(a->ids);
    Py_XDECREF(a->mask);
    Py_XDECREF(a->targets);
    Py_XDECREF(a->lengths);
}

static int parse_batch(const model_config *c, PyObject *ids_obj, PyObject *mask_obj,
                       PyObject *targets_obj, PyObject *ignore_obj, PyObject *temp_obj,
                       int need_targets, batch_args *a) {
    memset(a, 0, sizeof *a);
    a->ignore_index = -100;
    a->temperature = 1.0;
    if (ignore_obj != NULL && o1p_parse_int(ignore_obj, "ignore_index", &a->ignore_index) < 0) return -1;
    if (temp_obj != NULL && o1p_parse_double(temp_obj, "temperature", &a->temperature) < 0) return -1;
    if (!(a->temperature > 0) || !isfinite(a->temperature) || !((float)a->temperature > 0)) {
        PyErr_SetString(PyExc_ValueError, "temperature: must be a positive finite number");
        return -1;
    }
    if (a->ignore_index >= 0 && a->ignore_index < c->vocab_size) {
        PyErr_Format(PyExc_ValueError,
                     "ignore_index: %lld is a valid token id (vocab_size %lld); use a negative value",
                     a->ignore_index, (long long)c->vocab_size);
        return -1;
    }
    a->ids = o1p_as_index(ids_obj, "input_ids", 2);
    if (a->ids == NULL) return -1;
    if (o1p_check_nonempty(a->ids, "input_ids") < 0) return -1;
    a->B = PyArray_DIM(a->ids, 0);
    a->T = PyArray_DIM(a->ids, 1);
    if (a->T > c->max_positions) {
        PyErr_Format(PyExc_ValueError,
                     "input_ids: sequence length %zd exceeds the model's context "
                     "(max_position_embeddings = %lld)",
                     (Py_ssize_t)a->T, (long long)c->max_positions);
        return -1;
    }
    if (o1p_check_product(a->B, a->T, NPY_MAX_INT32, "input_ids") < 0) return -1;
    npy_intp bdim[1] = {a->B};
    a->lengths = (PyArrayObject *)PyArray_EMPTY(1, bdim, NPY_INT64, 0);
    if (a->lengths == NULL) return -1;
    int64_t *len = (int64_t *)PyArray_DATA(a->lengths);
    if (mask_obj == NULL || mask_obj == Py_None) {
        for (npy_intp b = 0; b < a->B; b++) len[b] = a->T;
    } else {
        a->mask = o1p_as_mask(mask_obj, "attention_mask", 2);
        if (a->mask == NULL) return -1;
        if (o1p_check_same_shape(a->mask, "attention_mask", a->ids, "input_ids") < 0) return -1;
        const uint8_t *m = (const uint8_t *)PyArray_DATA(a->mask);
        for (npy_intp b = 0; b < a->B; b++) {
            npy_intp l = 0;
            while (l < a->T && m[b * a->T + l]) l++;
            for (npy_intp t = l; t < a->T; t++) {
                if (m[b * a->T + t]) {
                    PyErr_Format(PyExc_ValueError,
                                 "attention_mask: row %zd is not right-padded (a 1 at column %zd "
                                 "follows a 0 at column %zd); put the real tokens first",
                                 (Py_ssize_t)b, (Py_ssize_t)t, (Py_ssize_t)l);
                    return -1;
                }
            }
            len[b] = l;
        }
    }
    const int64_t *ids = (const int64_t *)PyArray_DATA(a->ids);
    for (npy_intp b = 0; b < a->B; b++) {
        a->N += len[b];
        for (npy_intp t = 0; t < len[b]; t++) {
            int64_t v = ids[b * a->T + t];
            if (v < 0 || v >= c->vocab_size) {
                PyErr_Format(PyExc_ValueError,
                             "input_ids: token id %lld at (%zd, %zd) is outside [0, %lld) (vocab_size)",
                             (long long)v, (Py_ssize_t)b, (Py_ssize_t)t, (long long)c->vocab_size);
                return -1;
            }
        }
    }
    if (o1p_check_blas_size(o1p_mul_sat(a->N, 3 * c->hidden_size), "input_ids") < 0) return -1;
    if (targets_obj == NULL || targets_obj == Py_None) {
        if (need_targets) {
            PyErr_SetString(PyExc_TypeError, "targets: required");
            return -1;
        }
        return 0;
    }
    a->targets = o1p_as_index(targets_obj, "targets", 2);
    if (a->targets == NULL) return -1;
    if (o1p_check_same_shape(a->targets, "targets", a->ids, "input_ids") < 0) return -1;
    const int64_t *tg = (const int64_t *)PyArray_DATA(a->targets);
    for (npy_intp b = 0; b < a->B; b++) {
        for (npy_intp t = 0; t < len[b]; t++) {
            int64_t v = tg[b * a->T + t];
            if ((v < 0 || v >= c->vocab_size) && v != a->ignore_index) {
                PyErr_Format(PyExc_ValueError,
                             "targets: value %lld at (%zd, %zd) is outside [0, %lld) and is not "
                             "ignore_index (%lld)",
                             (long long)v, (Py_ssize_t)b, (Py_ssize_t)t, (long long)c->vocab_size,
                             a->ignore_index);
                return -1;
            }
        }
    }
    return 0;
}

/* ---- layout -------------------------------------------------------------- */

static PyObject *py_model_layout(PyObject *self, PyObject *args, PyObject *kwds) {
    (void)self;
    static char *kwlist[] = {"config", NULL};
    PyObject *cfg_obj;
    model_config c;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:model_layout", kwlist, &cfg_obj)) return NULL;
    if (parse_config(cfg_obj, &c) < 0) return NULL;
    PyObject *list = PyList_New(0);
    if (list == NULL) return NULL;
    long long d = c.hidden_size, F = c.intermediate_size;
#define O1P_ADD(fmt_name, off, shape)                                                   \
    do {                                                                                \
        PyObject *t_ = Py_BuildValue("(sLN)", fmt_name, (long long)(off), shape);       \
        if (t_ == NULL || PyList_Append(list, t_) < 0) {                                \
            Py_XDECREF(t_);                                                             \
            Py_DECREF(list);                                                            \
            return NULL;                                                                \
        }                                                                               \
        Py_DECREF(t_);                                                                  \
    } while (0)
    O1P_ADD("model.embed_tokens.weight", 0, Py_BuildValue("(LL)", (long long)c.vocab_size, d));
    char name[128];
    for (o1p_int l = 0; l < c.num_layers; l++) {
        model_layer_offsets o = model_layer_offsets_of(&c, l);
        const char *proj[3] = {"q", "k", "v"};
        snprintf(name, sizeof name, "model.layers.%lld.input_layernorm.weight", (long long)l);
        O1P_ADD(name, o.ln1, Py_BuildValue("(L)", d));
        for (int i = 0; i < 3; i++) {
            snprintf(name, sizeof name, "model.layers.%lld.self_attn.%s_proj.weight", (long long)l, proj[i]);
            O1P_ADD(name, o.wqkv + i * d * d, Py_BuildValue("(LL)", d, d));
            snprintf(name, sizeof name, "model.layers.%lld.self_attn.%s_proj.bias", (long long)l, proj[i]);
            O1P_ADD(name, o.bqkv + i * d, Py_BuildValue("(L)", d));
        }
        snprintf(name, sizeof name, "model.layers.%lld.self_attn.o_proj.weight", (long long)l);
        O1P_ADD(name, o.wo, Py_BuildValue("(LL)", d, d));
        snprintf(name, sizeof name, "model.layers.%lld.post_attention_layernorm.weight", (long long)l);
        O1P_ADD(name, o.ln2, Py_BuildValue("(L)", d));
        snprintf(name, sizeof name, "model.layers.%lld.mlp.gate_proj.weight", (long long)l);
        O1P_ADD(name, o.wgu, Py_BuildValue("(LL)", F, d));
        snprintf(name, sizeof name, "model.layers.%lld.mlp.up_proj.weight", (long long)l);
        O1P_ADD(name, o.wgu + F * d, Py_BuildValue("(LL)", F, d));
        snprintf(name, sizeof name, "model.layers.%lld.mlp.down_proj.weight", (long long)l);
        O1P_ADD(name, o.wdown, Py_BuildValue("(LL)", d, F));
    }
    O1P_ADD("model.norm.weight", model_norm_offset(&c), Py_BuildValue("(L)", d));
#undef O1P_ADD
    return list;
}

static PyObject *py_model_num_params(PyObject *self, PyObject *args, PyObject *kwds) {
    (void)self;
    static char *kwlist[] = {"config", NULL};
    PyObject *cfg_obj;
    model_config c;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:model_num_params", kwlist, &cfg_obj)) return NULL;
    if (parse_config(cfg_obj, &c) < 0) return NULL;
    return PyLong_FromLongLong((long long)model_num_params(&c));
}

static PyObject *py_model_arena_size(PyObject *self, PyObject *args, PyObject *kwds) {
    (void)self;
    static char *kwlist[] = {"config", "n_tokens", "threads", NULL};
    PyObject *cfg_obj, *n_obj, *t_obj = NULL;
    model_config c;
    long long n, threads = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|O:model_arena_size", kwlist, &cfg_obj, &n_obj,
                                     &t_obj))
        return NULL;
    if (parse_config(cfg_obj, &c) < 0 || o1p_parse_int(n_obj, "n_tokens", &n) < 0 ||
        (t_obj && o1p_parse_int(t_obj, "threads", &threads) < 0))
        return NULL;
    if (n < 0 || n > NPY_MAX_INT32) {
        PyErr_Format(PyExc_ValueError, "n_tokens: must be in [0, 2^31), got %lld", n);
        return NULL;
    }
    if (threads < 1 || threads > 4096) {
        PyErr_Format(PyExc_ValueError, "threads: must be in [1, 4096], got %lld", threads);
        return NULL;
    }
    o1p_int need = model_arena_floats(&c, n, (int)threads);
    if (need < 0) {
        PyErr_Format(PyExc_ValueError,
                     "n_tokens: the activation arena for %lld tokens (threads = %lld) of this config "
                     "overflows int64",
                     n, threads);
        return NULL;
    }
    return PyLong_FromLongLong((long long)need);
}

static PyObject *py_model_generate_work_size(PyObject *self, PyObject *args, PyObject *kwds) {
    (void)self;
    static char *kwlist[] = {"config", "n_prompts", "n_prompt_tokens", "max_prompt", "max_new_tokens", NULL};
    PyObject *cfg_obj, *b_obj, *n_obj, *mp_obj, *mn_obj;
    model_config c;
    long long b, n, mp, mn;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOO:model_generate_work_size", kwlist, &cfg_obj,
                                     &b_obj, &n_obj, &mp_obj, &mn_obj))
        return NULL;
    if (parse_config(cfg_obj, &c) < 0 || o1p_parse_int(b_obj, "n_prompts", &b) < 0 ||
        o1p_parse_int(n_obj, "n_prompt_tokens", &n) < 0 || o1p_parse_int(mp_obj, "max_prompt", &mp) < 0 ||
        o1p_parse_int(mn_obj, "max_new_tokens", &mn) < 0)
        return NULL;
    if (b < 0 || n < 0 || mp < 0 || mn < 0 || b > NPY_MAX_INT32 || n > NPY_MAX_INT32 ||
        mp > c.max_positions || mn > c.max_positions - mp) {
        PyErr_SetString(PyExc_ValueError, "n_prompts: sizes must be >= 0 and fit the context");
        return NULL;
    }
    o1p_int need = model_generate_work_floats(&c, b, n, mp, mn);
    if (need < 0) {
        PyErr_SetString(PyExc_ValueError, "n_prompts: the workspace for these sizes overflows int64");
        return NULL;
    }
    return PyLong_FromLongLong((long long)need);
}

/* ---- forward / backward -------------------------------------------------- */

static PyObject *py_model_forward(PyObject *self, PyObject *args, PyObject *kwds) {
    (void)self;
    static char *kwlist[] = {"config", "params", "arena", "input_ids", "attention_mask", "targets",
                             "ignore_index", "temperature", "return_entropy", "return_hidden", NULL};
    PyObject *cfg_obj, *params_obj, *arena_obj, *ids_obj, *mask_obj = Py_None, *tg_obj = Py_None;
    PyObject *ignore_obj = NULL, *temp_obj = NULL;
    int want_entropy = 0, want_hidden = 0;
    model_config c;
    batch_args a;
    memset(&a, 0, sizeof a);
    PyArrayObject *logp = NULL, *ent = NULL, *hid = NULL;
    PyObject *result = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOO|OOOOpp:model_forward", kwlist, &cfg_obj,
                                     &params_obj, &arena_obj, &ids_obj, &mask_obj, &tg_obj,
                                     &ignore_obj, &temp_obj, &want_entropy, &want_hidden))
        return NULL;
    if (parse_config(cfg_obj, &c) < 0) return NULL;
    npy_intp P = model_num_params(&c);
    float *params = o1p_f32_buffer(params_obj, "params", P, 1, 0);
    if (params == NULL) return NULL;
    if (parse_batch(&c, ids_obj, mask_obj, tg_obj, ignore_obj, temp_obj, 0, &a) < 0) goto fail;
    npy_intp need = model_arena_floats(&c, a.N, 1);
    if (need < 0) {
        PyErr_Format(PyExc_ValueError, "input_ids: the activation arena for %zd tokens overflows int64",
                     (Py_ssize_t)a.N);
        goto fail;
    }
    float *arena = o1p_f32_buffer(arena_obj, "arena", need, 0, 1);
    if (arena == NULL) goto fail;
    if (o1p_check_disjoint(arena_obj, "arena", params_obj, "params") < 0) goto fail;
    npy_intp dims[3] = {a.B, a.T, c.hidden_size};
    int has_targets = a.targets != NULL;
    if (has_targets) {
        logp = (PyArrayObject *)PyArray_EMPTY(2, dims, NPY_FLOAT32, 0);
        if (logp == NULL) goto fail;
        if (want_entropy) {
            ent = (PyArrayObject *)PyArray_EMPTY(2, dims, NPY_FLOAT32, 0);
            if (ent == NULL) goto fail;
        }
    } else if (want_entropy) {
        PyErr_SetString(PyExc_ValueError, "return_entropy: needs targets");
        goto fail;
    }
    if (want_hidden) {
        hid = (PyArrayObject *)PyArray_EMPTY(3, dims, NPY_FLOAT32, 0);
        if (hid == NULL) goto fail;
    }
    int st;
    O1P_WITHOUT_GIL(o1p_mul_sat(a.N, P), st = model_forward(
        &c, params, a.B, a.T, (const int64_t *)PyArray_DATA(a.ids),
        (const int64_t *)PyArray_DATA(a.lengths),
        has_targets ? (const int64_t *)PyArray_DATA(a.targets) : NULL, a.ignore_index,
        (float)a.temperature, arena, logp ? (float *)PyArray_DATA(logp) : NULL,
        ent ? (float *)PyArray_DATA(ent) : NULL, hid ? (float *)PyArray_DATA(hid) : NULL));
    if (st == O1P_EVALUE) {
        PyErr_SetString(PyExc_ValueError,
                        "params: the forward pass produced non-finite logits (are the parameters finite?)");
        goto fail;
    }
    if (st != O1P_OK) {
        o1p_raise_status(st, "model_forward");
        goto fail;
    }
    result = Py_BuildValue("(OOO)", logp ? (PyObject *)logp : Py_None, ent ? (PyObject *)ent : Py_None,
                           hid ? (PyObject *)hid : Py_None);
fail:
    batch_clear(&a);
    Py_XDECREF(logp);
    Py_XDECREF(ent);
    Py_XDECREF(hid);
    return result;
}

static PyObject *py_model_backward(PyObject *self, PyObject *args, PyObject *kwds) {
    (void)self;
    static char *kwlist[] = {"config", "params", "grads", "arena", "input_ids", "attention_mask",
                             "targets", "grad_logp", "ignore_index", "temperature", NULL};
    PyObject *cfg_obj, *params_obj, *grads_obj, *arena_obj, *ids_obj, *mask_obj, *tg_obj, *gl_obj;
    PyObject *ignore_obj = NULL, *temp_obj = NULL;
    model_config c;
    batch_args a;
    memset(&a, 0, sizeof a);
    PyArrayObject *gl = NULL;
    PyObject *result = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOOOOO|OO:model_backward", kwlist, &cfg_obj,
                                     &params_obj, &grads_obj, &arena_obj, &ids_obj, &mask_obj,
                                     &tg_obj, &gl_obj, &ignore_obj, &temp_obj))
        return NULL;
    if (parse_config(cfg_obj, &c) < 0) return NULL;
    npy_intp P = model_num_params(&c);
    float *params = o1p_f32_buffer(params_obj, "params", P, 1, 0);
    if (params == NULL) return NULL;
    float *grads = o1p_f32_buffer(grads_obj, "grads", P, 1, 1);
    if (grads == NULL) return NULL;
    if (o1p_check_disjoint(grads_obj, "grads", params_obj, "params") < 0) return NULL;
    if (parse_batch(&c, ids_obj, mask_obj, tg_obj, ignore_obj, temp_obj, 1, &a) < 0) goto fail;
    npy_intp need = model_arena_floats(&c, a.N, 1);
    if (need < 0) {
        PyErr_Format(PyExc_ValueError, "input_ids: the activation arena for %zd tokens overflows int64",
                     (Py_ssize_t)a.N);
        goto fail;
    }
    float *arena = o1p_f32_buffer(arena_obj, "arena", need, 0, 1);
    if (arena == NULL) goto fail;
    npy_intp na = PyArray_SIZE((PyArrayObject *)arena_obj);
    if (o1p_check_disjoint(arena_obj, "arena", params_obj, "params") < 0 ||
        o1p_check_disjoint(arena_obj, "arena", grads_obj, "grads") < 0 ||
        o1p_check_disjoint(arena_obj, "arena", gl_obj, "grad_logp") < 0 ||
        o1p_check_disjoint(grads_obj, "grads", gl_obj, "grad_logp") < 0)
        goto fail;
    gl = o1p_as_float(gl_obj, "grad_logp", 2, NPY_FLOAT32, O1P_ALLOW_INT);
    if (gl == NULL) goto fail;
    if (o1p_check_same_shape(gl, "grad_logp", a.ids, "input_ids") < 0 ||
        o1p_check_finite(gl, "grad_logp", 0) < 0)
        goto fail;
    int st;
    O1P_WITHOUT_GIL(o1p_mul_sat(a.N, P), st = model_backward(
        &c, params, a.B, a.T, (const int64_t *)PyArray_DATA(a.ids),
        (const int64_t *)PyArray_DATA(a.lengths), (const int64_t *)PyArray_DATA(a.targets),
        a.ignore_index, (float)a.temperature, arena, na, (const float *)PyArray_DATA(gl), grads));
    if (st == O1P_EVALUE) {
        PyErr_SetString(PyExc_ValueError,
                        "arena: backward failed (was the forward run with the same inputs?); grads "
                        "are unchanged");
        goto fail;
    }
    if (st != O1P_OK) {
        o1p_raise_status(st, "model_backward");
        goto fail;
    }
    result = Py_None;
    Py_INCREF(result);
fail:
    batch_clear(&a);
    Py_XDECREF(gl);
    return result;
}

/* ---- optimizer ----------------------------------------------------------- */

static PyObject *py_model_grad_norm(PyObject *self, PyObject *args, PyObject *kwds) {
    (void)self;
    static char *kwlist[] = {"grads", NULL};
    PyObject *g_obj;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:model_grad_norm", kwlist, &g_obj)) return NULL;
    if (!PyArray_Check(g_obj)) {
        PyErr_Format(PyExc_TypeError, "grads: expected a float32 NumPy array, got %s", Py_TYPE(g_obj)->tp_name);
        return NULL;
    }
    npy_intp n = PyArray_SIZE((PyArrayObject *)g_obj);
    float *g = o1p_f32_buffer(g_obj, "grads", n, 1, 0);
    if (g == NULL) return NULL;
    double norm;
    O1P_WITHOUT_GIL(n, norm = model_grad_norm(n, g));
    return PyFloat_FromDouble(norm);
}

static PyObject *py_model_adamw_step(PyObject *self, PyObject *args, PyObject *kwds) {
    (void)self;
    static char *kwlist[] = {"params", "grads", "exp_avg", "exp_avg_sq", "step", "lr", "beta1",
                             "beta2", "eps", "weight_decay", "max_grad_norm", NULL};
    PyObject *p_obj, *g_obj, *m_obj, *v_obj, *step_obj, *lr_obj, *b1_obj, *b2_obj, *eps_obj, *wd_obj;
    PyObject *clip_obj = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOOOOOOO|O:model_adamw_step", kwlist, &p_obj,
                                     &g_obj, &m_obj, &v_obj, &step_obj, &lr_obj, &b1_obj, &b2_obj,
                                     &eps_obj, &wd_obj, &clip_obj))
        return NULL;
    long long step;
    double lr, b1, b2, eps, wd, clip = 0.0;
    if (o1p_parse_int(step_obj, "step", &step) < 0 || o1p_parse_double(lr_obj, "lr", &lr) < 0 ||
        o1p_parse_double(b1_obj, "beta1", &b1) < 0 || o1p_parse_double(b2_obj, "beta2", &b2) < 0 ||
        o1p_parse_double(eps_obj, "eps", &eps) < 0 || o1p_parse_double(wd_obj, "weight_decay", &wd) < 0)
        return NULL;
    if (clip_obj != Py_None && o1p_parse_double(clip_obj, "max_grad_norm", &clip) < 0) return NULL;
    if (step < 1) {
        PyErr_Format(PyExc_ValueError, "step: must be >= 1 (1-based step count), got %lld", step);
        return NULL;
    }
    if (!(lr >= 0) || !isfinite(lr)) {
        PyErr_SetString(PyExc_ValueError, "lr: must be a finite number >= 0");
        return NULL;
    }
    if (!(b1 >= 0 && b1 < 1)) {
        PyErr_SetString(PyExc_ValueError, "beta1: must be in [0, 1)");
        return NULL;
    }
    if (!(b2 >= 0 && b2 < 1)) {
        PyErr_SetString(PyExc_ValueError, "beta2: must be in [0, 1)");
        return NULL;
    }
    if (!(eps > 0) || !isfinite(eps)) {
        PyErr_SetString(PyExc_ValueError, "eps: must be a positive finite number");
        return NULL;
    }
    if (!(wd >= 0) || !isfinite(wd)) {
        PyErr_SetString(PyExc_ValueError, "weight_decay: must be a finite number >= 0");
        return NULL;
    }
    if (isnan(clip) || clip < 0) {
        PyErr_SetString(PyExc_ValueError, "max_grad_norm: must be None, inf or a number >= 0 (0: no clipping)");
        return NULL;
    }
    if (!PyArray_Check(p_obj)) {
        PyErr_Format(PyExc_TypeError, "params: expected a float32 NumPy array, got %s", Py_TYPE(p_obj)->tp_name);
        return NULL;
    }
    npy_intp P = PyArray_SIZE((PyArrayObject *)p_obj);
    float *p = o1p_f32_buffer(p_obj, "params", P, 1, 1);
    if (p == NULL) return NULL;
    float *g = o1p_f32_buffer(g_obj, "grads", P, 1, 0);
    if (g == NULL) return NULL;
    float *m = o1p_f32_buffer(m_obj, "exp_avg", P, 1, 1);
    if (m == NULL) return NULL;
    float *v = o1p_f32_buffer(v_obj, "exp_avg_sq", P, 1, 1);
    if (v == NULL) return NULL;
    if (o1p_check_disjoint(p_obj, "params", g_obj, "grads") < 0 ||
        o1p_check_disjoint(p_obj, "params", m_obj, "exp_avg") < 0 ||
        o1p_check_disjoint(p_obj, "params", v_obj, "exp_avg_sq") < 0 ||
        o1p_check_disjoint(m_obj, "exp_avg", v_obj, "exp_avg_sq") < 0 ||
        o1p_check_disjoint(g_obj, "grads", m_obj, "exp_avg") < 0 ||
        o1p_check_disjoint(g_obj, "grads", v_obj, "exp_avg_sq") < 0)
        return NULL;
    double norm = 0;
    int st;
    O1P_WITHOUT_GIL(P, st = model_adamw_step(P, p, g, m, v, step, lr, b1, b2, eps, wd, clip, &norm));
    if (st != O1P_OK) {
        char buf[32];
        snprintf(buf, sizeof buf, "%.9g", norm);
        PyErr_Format(PyExc_ValueError, "grads: the gradient norm is not finite (%s); parameters not updated",
                     buf);
        return NULL;
    }
    return PyFloat_FromDouble(norm);
}

/* ---- generation ---------------------------------------------------------- */

static PyObject *py_model_generate(PyObject *self, PyObject *args, PyObject *kwds) {
    (void)self;
    static char *kwlist[] = {"config", "params", "prompt_ids", "prompt_offsets", "max_new_tokens",
                             "temperature", "top_p", "stop_token_ids", "seed", "seq_index0", "fill",
                             "workspace", NULL};
    PyObject *cfg_obj, *params_obj, *ids_obj, *off_obj, *maxnew_obj, *temp_obj, *topp_obj;
    PyObject *stop_obj = Py_None, *seed_obj, *seq0_obj = NULL, *fill_obj = NULL, *work_obj = Py_None;
    model_config c;
    PyArrayObject *ids = NULL, *off = NULL, *stop = NULL, *tokens = NULL, *lengths = NULL, *stopped = NULL;
    PyObject *result = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOOOOOO|OOO:model_generate", kwlist, &cfg_obj,
                                     &params_obj, &ids_obj, &off_obj, &maxnew_obj, &temp_obj,
                                     &topp_obj, &stop_obj, &seed_obj, &seq0_obj, &fill_obj, &work_obj))
        return NULL;
    if (parse_config(cfg_obj, &c) < 0) return NULL;
    npy_intp P = model_num_params(&c);
    float *params = o1p_f32_buffer(params_obj, "params", P, 1, 0);
    if (params == NULL) return NULL;
    long long max_new, seq0 = 0, fill = 0;
    double temperature, top_p;
    if (o1p_parse_int(maxnew_obj, "max_new_tokens", &max_new) < 0 ||
        o1p_parse_double(temp_obj, "temperature", &temperature) < 0 ||
        o1p_parse_double(topp_obj, "top_p", &top_p) < 0 ||
        (seq0_obj && o1p_parse_int(seq0_obj, "seq_index0", &seq0) < 0) ||
        (fill_obj && o1p_parse_int(fill_obj, "fill", &fill) < 0))
        return NULL;
    if (PyBool_Check(seed_obj) || !PyLong_Check(seed_obj)) {
        PyErr_Format(PyExc_TypeError, "seed: expected an int, got %s", Py_TYPE(seed_obj)->tp_name);
        return NULL;
    }
    unsigned long long seed = PyLong_AsUnsignedLongLong(seed_obj);
    if (seed == (unsigned long long)-1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) return NULL;
        PyErr_Clear();
        PyErr_SetString(PyExc_ValueError, "seed: must be an int in [0, 2^64)");
        return NULL;
    }
    if (max_new < 1 || max_new > c.max_positions) {
        PyErr_Format(PyExc_ValueError, "max_new_tokens: must be in [1, max_position_embeddings = %lld], got %lld",
                     (long long)c.max_positions, max_new);
        return NULL;
    }
    if (!(temperature >= 0) || !isfinite(temperature)) {
        PyErr_SetString(PyExc_ValueError, "temperature: must be a finite number >= 0 (0: greedy)");
        return NULL;
    }
    if (!(top_p > 0 && top_p <= 1)) {
        PyErr_SetString(PyExc_ValueError, "top_p: must be in (0, 1]");
        return NULL;
    }
    if (seq0 < 0) {
        PyErr_SetString(PyExc_ValueError, "seq_index0: must be >= 0");
        return NULL;
    }
    ids = o1p_as_index(ids_obj, "prompt_ids", 1);
    if (ids == NULL) goto fail;
    off = o1p_as_index(off_obj, "prompt_offsets", 1);
    if (off == NULL) goto fail;
    npy_intp B = PyArray_SIZE(off) - 1, total = PyArray_SIZE(ids);
    if (B < 1) {
        PyErr_SetString(PyExc_ValueError, "prompts: must not be empty (no prompts given)");
        goto fail;
    }
    const int64_t *o = (const int64_t *)PyArray_DATA(off);
    if (o[0] != 0 || o[B] != total) {
        PyErr_SetString(PyExc_ValueError, "prompt_offsets: must start at 0 and end at len(prompt_ids)");
        goto fail;
    }
    int64_t maxp = 0;
    for (npy_intp b = 0; b < B; b++) {
        int64_t n = o[b + 1] - o[b];
        if (n > maxp) maxp = n;
        if (n < 1) {
            PyErr_Format(PyExc_ValueError, "prompts: prompt %zd is empty (every prompt needs >= 1 token)",
                         (Py_ssize_t)b);
            goto fail;
        }
        if (n > c.max_positions - max_new) { /* n + max_new > context, without overflow */
            PyErr_Format(PyExc_ValueError,
                         "max_new_tokens: prompt %zd has %lld tokens; with max_new_tokens = %lld it "
                         "exceeds the model's context (max_position_embeddings = %lld)",
                         (Py_ssize_t)b, (long long)n, max_new, (long long)c.max_positions);
            goto fail;
        }
    }
    /* every prompt id indexes the embedding: no value outside [0, V) (-1 used to
     * pass the ignore-index exception of o1p_check_index_range and read one row
     * before the embedding matrix) */
    if (o1p_check_ids(ids, "prompts", 0, c.vocab_size) < 0) goto fail;
    if (o1p_check_blas_size(o1p_mul_sat(total, 3 * c.hidden_size), "prompts") < 0 ||
        o1p_check_product(B, max_new, NPY_MAX_INT32, "max_new_tokens") < 0 ||
        o1p_check_product(B, c.num_layers * 2 * c.hidden_size, NPY_MAX_INTP / 8, "prompts: KV cache") < 0 ||
        o1p_check_product(B * c.num_layers * 2 * c.hidden_size, c.max_positions, NPY_MAX_INTP / 8,
                          "prompts: KV cache") < 0)
        goto fail;
    if (model_generate_work_floats(&c, B, total, maxp, max_new) < 0) {
        PyErr_SetString(PyExc_ValueError, "prompts: the workspace for these sizes overflows int64");
        goto fail;
    }
    if (stop_obj != Py_None) {
        stop = o1p_as_index(stop_obj, "stop_token_id", 1);
        if (stop == NULL) goto fail;
    }
    float *work = NULL;
    npy_intp work_floats = 0;
    if (work_obj != Py_None) {
        work = o1p_f32_buffer(work_obj, "workspace", 0, 0, 1);
        if (work == NULL) goto fail;
        work_floats = PyArray_SIZE((PyArrayObject *)work_obj);
        if (o1p_check_disjoint(work_obj, "workspace", params_obj, "params") < 0) goto fail;
    }
    npy_intp tdims[2] = {B, max_new};
    tokens = (PyArrayObject *)PyArray_EMPTY(2, tdims, NPY_INT64, 0);
    lengths = (PyArrayObject *)PyArray_EMPTY(1, tdims, NPY_INT64, 0);
    stopped = (PyArrayObject *)PyArray_ZEROS(1, tdims, NPY_BOOL, 0);
    if (!tokens || !lengths || !stopped) goto fail;
    int st;
    Py_BEGIN_ALLOW_THREADS st = model_generate(
        &c, params, B, (const int64_t *)PyArray_DATA(ids), o, max_new, (float)temperature, (float)top_p,
        stop ? (const int64_t *)PyArray_DATA(stop) : NULL, stop ? PyArray_SIZE(stop) : 0,
        (uint64_t)seed, seq0, fill, work, work_floats, (int64_t *)PyArray_DATA(tokens),
        (int64_t *)PyArray_DATA(lengths),
        (uint8_t *)PyArray_DATA(stopped));
    Py_END_ALLOW_THREADS
    if (st == O1P_EVALUE) {
        PyErr_SetString(PyExc_ValueError, "params: sampling met non-finite logits (are the parameters finite?)");
        goto fail;
    }
    if (st != O1P_OK) {
        o1p_raise_status(st, "model_generate");
        goto fail;
    }
    result = Py_BuildValue("(OOO)", tokens, lengths, stopped);
fail:
    Py_XDECREF(ids);
    Py_XDECREF(off);
    Py_XDECREF(stop);
    Py_XDECREF(tokens);
    Py_XDECREF(lengths);
    Py_XDECREF(stopped);
    return result;
}

#define O1P_KW(f) (PyCFunction)(void (*)(void))(f), METH_VARARGS | METH_KEYWORDS

PyMethodDef o1p_model_methods[] = {
    {"model_layout", O1P_KW(py_model_layout),
     "model_layout($module, /, config)\n--\n\n"
     "The flat parameter buffer's layout -> [(name, offset, shape)]."},
    {"model_num_params", O1P_KW(py_model_num_params),
     "model_num_params($module, /, config)\n--\n\n"
     "Number of float32 parameters -> int."},
    {"model_arena_size", O1P_KW(py_model_arena_size),
     "model_arena_size($module, /, config, n_tokens, threads=1)\n--\n\n"
     "float32 elements of the activation arena (with room for threads - 1 private gradient "
     "buffers) -> int."},
    {"model_forward", O1P_KW(py_model_forward),
     "model_forward($module, /, config, params, arena, input_ids, attention_mask=None, "
     "targets=None, ignore_index=-100, temperature=1.0, return_entropy=False, "
     "return_hidden=False)\n--\n\n"
     "The model's forward pass -> (logp[B,T] or None, entropy or None, hidden[B,T,d] or None)."},
    {"model_backward", O1P_KW(py_model_backward),
     "model_backward($module, /, config, params, grads, arena, input_ids, attention_mask, "
     "targets, grad_logp, ignore_index=-100, temperature=1.0)\n--\n\n"
     "Accumulates d(sum grad_logp*logp)/d params into grads -> None."},
    {"model_grad_norm", O1P_KW(py_model_grad_norm),
     "model_grad_norm($module, /, grads)\n--\n\n"
     "The gradient's global L2 norm -> float."},
    {"model_adamw_step", O1P_KW(py_model_adamw_step),
     "model_adamw_step($module, /, params, grads, exp_avg, exp_avg_sq, step, lr, beta1, beta2, "
     "eps, weight_decay, max_grad_norm=None)\n--\n\n"
     "One AdamW step in place -> the gradient norm before clipping."},
    {"model_generate_work_size", O1P_KW(py_model_generate_work_size),
     "model_generate_work_size($module, /, config, n_prompts, n_prompt_tokens, max_prompt, "
     "max_new_tokens)\n--\n\n"
     "float32 elements of model_generate's workspace at the current thread count -> int."},
    {"model_generate", O1P_KW(py_model_generate),
     "model_generate($module, /, config, params, prompt_ids, prompt_offsets, max_new_tokens, "
     "temperature, top_p, stop_token_ids, seed, seq_index0=0, fill=0, workspace=None)\n--\n\n"
     "Sample continuations -> (tokens[B,max_new], lengths[B], stopped[B])."},
    {NULL, NULL, 0, NULL},
};
