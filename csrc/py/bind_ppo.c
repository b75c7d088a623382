/* bind_ppo.c: Python bindings of the objectives, kernels/ppo.c (per-sequence
 * log-probs and the PPO-clip objective) and kernels/dpo.c (the DPO baseline).
 * One validation block per function, then bare pointers to the kernel with
 * the GIL released. */
#include "arrays.h"

#include <float.h>
#include <math.h>
#include <stdio.h>

#include "bind.h"
#include "dpo.h"
#include "ppo.h"

static const char *const reduce_choices[] = {"sum", "mean", NULL};
static const char *const ratio_choices[] = {"sequence_mean", "token", NULL};
/* Index in this list -> PPO_AGG_* via aggregate_code; "None" picks the
 * default of the ratio mode. */
static const char *const aggregate_choices[] = {
    "None", "mean", "sum", "grpo", "bnpo", "dr_grpo", "token-mean", "seq-mean-token-mean",
    "seq-mean-token-sum", NULL};
static const int aggregate_code[] = {
    -1, PPO_AGG_MEAN, PPO_AGG_SUM, PPO_AGG_SEQ_MEAN_TOKEN_MEAN, PPO_AGG_TOKEN_MEAN, PPO_AGG_DR_GRPO,
    PPO_AGG_TOKEN_MEAN, PPO_AGG_SEQ_MEAN_TOKEN_MEAN, PPO_AGG_SEQ_MEAN_TOKEN_SUM};

/* The mask as uint8. A C-contiguous bool array (the usual case) is viewed as
 * bytes instead of copied on every call (this objective is memory-bound).
 * Its bytes need not be 0/1 (a uint8 array viewed as bool): the kernels take
 * any nonzero byte as True, as NumPy does. Anything else goes through
 * o1p_as_mask. The view is only read, and nothing is sized from it. */
static PyArrayObject *mask_u8(PyObject *obj) {
    if (PyArray_Check(obj)) {
        PyArrayObject *a = (PyArrayObject *)obj;
        if (PyArray_TYPE(a) == NPY_BOOL && PyArray_NDIM(a) == 2 && PyArray_IS_C_CONTIGUOUS(a))
            return (PyArrayObject *)PyArray_View(a, PyArray_DescrFromType(NPY_UINT8), NULL);
    }
    return o1p_as_mask(obj, "mask", 2);
}

/* A [B,T] float32 array with B >= 1 and T >= 1, and its [B,T] mask: a view
 * (mask_u8) named "mask", or, with `mname`, an owned copy named so (a kernel
 * that decides from the mask which rows are empty reads what was checked). */
static int logp_and_mask_named(PyObject *x_obj, const char *xname, PyObject *m_obj, const char *mname,
                               PyArrayObject **x, PyArrayObject **m) {
    *x = o1p_as_float(x_obj, xname, 2, NPY_FLOAT32, O1P_FLOAT_ONLY);
    if (*x == NULL) return -1;
    if (PyArray_DIM(*x, 0) < 1 || PyArray_DIM(*x, 1) < 1) {
        PyErr_Format(PyExc_ValueError,
                     "%s: needs at least one sequence and one time step, got shape (%zd, %zd)", xname,
                     (Py_ssize_t)PyArray_DIM(*x, 0), (Py_ssize_t)PyArray_DIM(*x, 1));
        return -1;
    }
    if (o1p_check_product(PyArray_DIM(*x, 0), PyArray_DIM(*x, 1), NPY_MAX_INTP / 4, xname) < 0)
        return -1;
    *m = mname ? o1p_as_mask(m_obj, mname, 2) : mask_u8(m_obj);
    if (*m == NULL) return -1;
    return o1p_check_same_shape(*m, mname ? mname : "mask", *x, xname);
}

static int logp_and_mask(PyObject *x_obj, const char *xname, PyObject *m_obj, PyArrayObject **x,
                         PyArrayObject **m) {
    return logp_and_mask_named(x_obj, xname, m_obj, NULL, x, m);
}

/* The value at a flat index, named for an error message. */
static const char *describe(float v) {
    return isnan(v) ? "NaN" : (v > 0 ? "+inf" : "-inf");
}

static PyObject *py_sequence_logprobs(PyObject *self, PyObject *args, PyObject *kwds) {
    (void)self;
    static char *kwlist[] = {"token_logp", "mask", "reduce", NULL};
    PyObject *x_obj, *m_obj, *reduce_obj = NULL;
    PyArrayObject *x = NULL, *m = NULL, *out = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|O:sequence_logprobs", kwlist, &x_obj, &m_obj,
                                     &reduce_obj))
        return NULL;
    int reduce = reduce_obj ? o1p_parse_choice(reduce_obj, "reduce", reduce_choices) : PPO_REDUCE_SUM;
    if (reduce < 0) return NULL;
    if (logp_and_mask(x_obj, "token_logp", m_obj, &x, &m) < 0) goto fail;
    npy_intp B = PyArray_DIM(x, 0), T = PyArray_DIM(x, 1);
    out = (PyArrayObject *)PyArray_EMPTY(1, &B, NPY_FLOAT64, 0);
    if (out == NULL) goto fail;
    int st;
    o1p_int bad = 0;
    O1P_WITHOUT_GIL(B * T, st = ppo_sequence_logprobs_forward(
                               B, T, (const float *)PyArray_DATA(x), (const uint8_t *)PyArray_DATA(m),
                               reduce, (double *)PyArray_DATA(out), &bad));
    if (st != O1P_OK) {
        Py_CLEAR(out);
        if (st == O1P_EVALUE)
            PyErr_Format(PyExc_ValueError,
                         "token_logp: %s at valid position (b=%zd, t=%zd); valid entries must be "
                         "log-probabilities (-inf allowed, NaN and +inf not)",
                         describe(((const float *)PyArray_DATA(x))[bad]), (Py_ssize_t)(bad / T),
                         (Py_ssize_t)(bad % T));
        else
            o1p_raise_status(st, "sequence_logprobs");
    }
fail:
    Py_XDECREF(x);
    Py_XDECREF(m);
    return (PyObject *)out;
}

static PyObject *py_sequence_logprobs_backward(PyObject *self, PyObject *args, PyObject *kwds) {
    (void)self;
    static char *kwlist[] = {"grad", "mask", "reduce", NULL};
    PyObject *g_obj, *m_obj, *reduce_obj = NULL;
    PyArrayObject *g = NULL, *m = NULL, *out = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|O:sequence_logprobs_backward", kwlist, &g_obj,
                                     &m_obj, &reduce_obj))
        return NULL;
    int reduce = reduce_obj ? o1p_parse_choice(reduce_obj, "reduce", reduce_choices) : PPO_REDUCE_SUM;
    if (reduce < 0) return NULL;
    g = o1p_as_float(g_obj, "grad", 1, NPY_FLOAT64, O1P_ALLOW_INT);
    if (g == NULL) goto fail;
    m = mask_u8(m_obj);
    if (m == NULL) goto fail;
    npy_intp B = PyArray_DIM(m, 0), T = PyArray_DIM(m, 1);
    if (B < 1 || T < 1) {
        PyErr_Format(PyExc_ValueError,
                     "mask: needs at least one sequence and one time step, got shape (%zd, %zd)",
                     (Py_ssize_t)B, (Py_ssize_t)T);
        goto fail;
    }
    if (o1p_check_product(B, T, NPY_MAX_INTP / 4, "mask") < 0 ||
        o1p_check_dim(g, "grad", 0, B, "mask (one gradient per sequence)") < 0 ||
        o1p_check_finite(g, "grad", 0) < 0)
        goto fail;
    out = (PyArrayObject *)PyArray_EMPTY(2, PyArray_DIMS(m), NPY_FLOAT32, 0);
    if (out == NULL) goto fail;
    O1P_WITHOUT_GIL(B * T, ppo_sequence_logprobs_backward(B, T, (const double *)PyArray_DATA(g),
                                                          (const uint8_t *)PyArray_DATA(m), reduce,
                                                          (float *)PyArray_DATA(out)));
fail:
    Py_XDECREF(g);
    Py_XDECREF(m);
    return (PyObject *)out;
}

/* None -> *out = 0 (off); else a finite real number above `lo` (strictly). */
static int optional_above(PyObject *obj, const char *name, double lo, const char *why, double *out) {
    *out = 0.0;
    if (obj == NULL || obj == Py_None) return 0;
    if (o1p_parse_double(obj, name, out) < 0 || o1p_check_finite_scalar(*out, name) < 0) return -1;
    if (!(*out > lo)) {
        PyErr_Format(PyExc_ValueError, "%s: must be > %d or None (%s), got %R", name, (int)lo, why, obj);
        return -1;
    }
    return 0;
}

static PyObject *py_ppo_clip_loss(PyObject *self, PyObject *args, PyObject *kwds) {
    (void)self;
    static char *kwlist[] = {"logp", "ref_logp", "advantages", "mask", "eps_low", "eps_high", "ratio",
                             "aggregate", "dual_clip", "logratio_clamp", NULL};
    PyObject *lp_obj, *ref_obj, *adv_obj, *m_obj, *el_obj = NULL, *eh_obj = NULL, *ratio_obj = NULL;
    PyObject *agg_obj = Py_None, *dual_obj = Py_None, *clamp_obj = Py_None;
    PyArrayObject *lp = NULL, *m = NULL, *ref = NULL, *adv = NULL, *grad = NULL;
    PyObject *result = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOO|OOOOOO:ppo_clip_loss", kwlist, &lp_obj, &ref_obj,
                                     &adv_obj, &m_obj, &el_obj, &eh_obj, &ratio_obj, &agg_obj,
                                     &dual_obj, &clamp_obj))
        return NULL;

    /* scalar options */
    ppo_clip_config cfg = {PPO_RATIO_SEQUENCE_MEAN, PPO_AGG_MEAN, 0.2, 0.2, 0.0, 0.0};
    int ratio = ratio_obj ? o1p_parse_choice(ratio_obj, "ratio", ratio_choices) : PPO_RATIO_SEQUENCE_MEAN;
    if (ratio < 0) return NULL;
    cfg.ratio = ratio;
    int agg_i = o1p_parse_choice(agg_obj, "aggregate", aggregate_choices);
    if (agg_i < 0) return NULL;
    int agg = aggregate_code[agg_i];
    if (agg < 0) agg = ratio == PPO_RATIO_TOKEN ? PPO_AGG_TOKEN_MEAN : PPO_AGG_MEAN;
    int agg_is_seq = agg == PPO_AGG_MEAN || agg == PPO_AGG_SUM;
    if (agg_is_seq != (ratio == PPO_RATIO_SEQUENCE_MEAN)) {
        if (ratio == PPO_RATIO_TOKEN)
            PyErr_Format(PyExc_ValueError,
                         "aggregate: %R needs ratio='sequence_mean'; with ratio='token' choose one of "
                         "'grpo', 'bnpo', 'dr_grpo', 'token-mean', 'seq-mean-token-mean', "
                         "'seq-mean-token-sum' or None",
                         agg_obj);
        else
            PyErr_Format(PyExc_ValueError,
                         "aggregate: %R needs ratio='token'; with ratio='sequence_mean' choose one of "
                         "'mean', 'sum' or None",
                         agg_obj);
        return NULL;
    }
    cfg.aggregate = agg;
    if (el_obj && (o1p_parse_double(el_obj, "eps_low", &cfg.eps_low) < 0)) return NULL;
    if (eh_obj && (o1p_parse_double(eh_obj, "eps_high", &cfg.eps_high) < 0)) return NULL;
    if (!(cfg.eps_low > 0.0 && cfg.eps_low < 1.0)) {
        PyErr_Format(PyExc_ValueError, "eps_low: must lie in (0, 1), got %R", el_obj);
        return NULL;
    }
    if (!(cfg.eps_high > 0.0 && cfg.eps_high < 1.0)) {
        PyErr_Format(PyExc_ValueError, "eps_high: must lie in (0, 1), got %R", eh_obj);
        return NULL;
    }
    if (optional_above(dual_obj, "dual_clip", 1.0, "the dual-clip bound c of -A*c", &cfg.dual_clip) < 0 ||
        optional_above(clamp_obj, "logratio_clamp", 0.0, "the bound c of the log-ratio clamp [-c, c]",
                       &cfg.logratio_clamp) < 0)
        return NULL;

    /* arrays */
    if (logp_and_mask(lp_obj, "logp", m_obj, &lp, &m) < 0) goto fail;
    npy_intp B = PyArray_DIM(lp, 0), T = PyArray_DIM(lp, 1);
    ref = o1p_as_float(ref_obj, "ref_logp", -1, NPY_FLOAT32, O1P_FLOAT_ONLY);
    if (ref == NULL) goto fail;
    int ref_seq = PyArray_NDIM(ref) == 1;
    if (ref_seq && ratio == PPO_RATIO_SEQUENCE_MEAN) {
        /* per-sequence means: keep them in float64 */
        Py_CLEAR(ref);
        ref = o1p_as_float(ref_obj, "ref_logp", 1, NPY_FLOAT64, O1P_FLOAT_ONLY);
        if (ref == NULL) goto fail;
        if (o1p_check_dim(ref, "ref_logp", 0, B, "logp (one mean reference log-prob per sequence)") < 0 ||
            o1p_check_finite(ref, "ref_logp", 0) < 0)
            goto fail;
    } else if (PyArray_NDIM(ref) == 2) {
        if (o1p_check_same_shape(ref, "ref_logp", lp, "logp") < 0) goto fail;
    } else {
        PyObject *shape = PyArray_IntTupleFromIntp(PyArray_NDIM(ref), PyArray_DIMS(ref));
        if (ratio == PPO_RATIO_TOKEN)
            PyErr_Format(PyExc_ValueError,
                         "ref_logp: ratio='token' needs per-token reference log-probs of shape [B,T], "
                         "got shape %R",
                         shape);
        else
            PyErr_Format(PyExc_ValueError,
                         "ref_logp: expected per-token log-probs [B,T] or per-sequence mean log-probs "
                         "[B], got shape %R",
                         shape);
        Py_XDECREF(shape);
        goto fail;
    }
    adv = o1p_as_float(adv_obj, "advantages", 1, NPY_FLOAT64, O1P_ALLOW_INT);
    if (adv == NULL) goto fail;
    if (o1p_check_dim(adv, "advantages", 0, B, "logp (one advantage per sequence)") < 0 ||
        o1p_check_finite(adv, "advantages", 0) < 0)
        goto fail;
    if (ratio == PPO_RATIO_TOKEN) {
        /* the per-token work is float32: a larger advantage would silently
         * become inf there */
        const double *a = (const double *)PyArray_DATA(adv);
        for (npy_intp b = 0; b < B; b++) {
            if (fabs(a[b]) > (double)FLT_MAX) {
                char buf[32];
                snprintf(buf, sizeof buf, "%.9g", a[b]);
                PyErr_Format(PyExc_ValueError,
                             "advantages: %s at index %zd is beyond the float32 range that "
                             "ratio='token' computes in",
                             buf, (Py_ssize_t)b);
                goto fail;
            }
        }
    }
    grad = (PyArrayObject *)PyArray_EMPTY(2, PyArray_DIMS(lp), NPY_FLOAT32, 0);
    if (grad == NULL) goto fail;

    ppo_clip_result res = {0};
    int st;
    const float *ref2d = ref_seq && ratio == PPO_RATIO_SEQUENCE_MEAN ? NULL : (const float *)PyArray_DATA(ref);
    const double *ref1d = ref2d ? NULL : (const double *)PyArray_DATA(ref);
    O1P_WITHOUT_GIL(B * T, st = ppo_clip_loss_forward_backward(
                               &cfg, B, T, (const float *)PyArray_DATA(lp), ref2d, ref1d,
                               (const double *)PyArray_DATA(adv), (const uint8_t *)PyArray_DATA(m),
                               (float *)PyArray_DATA(grad), &res));
    if (st == O1P_EVALUE) {
        npy_intp i = res.bad_index;
        if (res.bad_which == 0) {
            float v = ((const float *)PyArray_DATA(lp))[i];
            PyErr_Format(PyExc_ValueError,
                         "logp: %s at valid position (b=%zd, t=%zd); %s", describe(v), (Py_ssize_t)(i / T),
                         (Py_ssize_t)(i % T),
                         isnan(v) ? "valid log-probs must be numbers"
                         : v < 0  ? "a token the policy cannot produce makes the ratio 0 (or NaN "
                                    "against a -inf reference): mask it out"
                                  : "log-probs must be finite");
        } else {
            float v = ((const float *)PyArray_DATA(ref))[i];
            PyErr_Format(PyExc_ValueError,
                         "ref_logp: %s at valid position (b=%zd, t=%zd); %s", describe(v),
                         (Py_ssize_t)(i / T), (Py_ssize_t)(i % T),
                         isnan(v) ? "valid log-probs must be numbers"
                         : v < 0  ? "a token the reference cannot produce makes the ratio infinite "
                                    "(or NaN): mask it out"
                                  : "log-probs must be finite");
        }
        goto fail;
    }
    if (st != O1P_OK) {
        o1p_raise_status(st, "ppo_clip_loss");
        goto fail;
    }
    result = Py_BuildValue("(dO(ddddddL))", res.loss, grad, res.clip_fraction, res.dual_clip_fraction,
                           res.approx_kl, res.ratio_mean, res.ratio_min, res.ratio_max,
                           (long long)res.count);
fail:
    Py_XDECREF(lp);
    Py_XDECREF(m);
    Py_XDECREF(ref);
    Py_XDECREF(adv);
    Py_XDECREF(grad);
    return result;
}

/* A per-sequence reference input: float64 [B], finite. */
static PyArrayObject *sequence_ref(PyObject *obj, const char *name, npy_intp B) {
    PyArrayObject *r = o1p_as_float(obj, name, 1, NPY_FLOAT64, O1P_FLOAT_ONLY);
    if (r == NULL) return NULL;
    if (o1p_check_dim(r, name, 0, B, "chosen_logp (one reference log-prob per pair)") < 0 ||
        o1p_check_finite(r, name, 0) < 0) {
        Py_DECREF(r);
        return NULL;
    }
    return r;
}

static PyObject *py_dpo_loss(PyObject *self, PyObject *args, PyObject *kwds) {
    (void)self;
    static char *kwlist[] = {"chosen_logp", "rejected_logp", "ref_chosen_logp", "ref_rejected_logp", "chosen_mask",
                             "rejected_mask", "beta", "weights", "length_normalize", NULL};
    PyObject *c_obj, *r_obj, *rc_obj, *rr_obj, *mc_obj, *mr_obj, *beta_obj = NULL, *w_obj = Py_None;
    PyObject *ln_obj = Py_False;
    PyArrayObject *c = NULL, *mc = NULL, *r = NULL, *mr = NULL, *refc = NULL, *refr = NULL, *w = NULL;
    PyArrayObject *gc = NULL, *gr = NULL;
    PyObject *result = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOOO|OOO:dpo_loss", kwlist, &c_obj, &r_obj, &rc_obj, &rr_obj,
                                     &mc_obj, &mr_obj, &beta_obj, &w_obj, &ln_obj))
        return NULL;

    /* scalar options */
    dpo_config cfg = {0.1, 0};
    if (beta_obj && (o1p_parse_double(beta_obj, "beta", &cfg.beta) < 0)) return NULL;
    if (!(cfg.beta > 0.0) || !isfinite(cfg.beta)) {
        PyErr_Format(PyExc_ValueError, "beta: must be a finite number > 0, got %R", beta_obj);
        return NULL;
    }
    if (!(PyBool_Check(ln_obj) || PyArray_IsScalar(ln_obj, Bool))) {
        PyErr_Format(PyExc_TypeError, "length_normalize: expected a bool, got %s", Py_TYPE(ln_obj)->tp_name);
        return NULL;
    }
    cfg.length_normalize = PyObject_IsTrue(ln_obj);

    /* arrays */
    if (logp_and_mask_named(c_obj, "chosen_logp", mc_obj, "chosen_mask", &c, &mc) < 0) goto fail;
    npy_intp B = PyArray_DIM(c, 0), Tc = PyArray_DIM(c, 1);
    if (logp_and_mask_named(r_obj, "rejected_logp", mr_obj, "rejected_mask", &r, &mr) < 0) goto fail;
    npy_intp Tr = PyArray_DIM(r, 1);
    if (o1p_check_dim(r, "rejected_logp", 0, B, "chosen_logp (one rejected response per pair)") < 0) goto fail;
    refc = sequence_ref(rc_obj, "ref_chosen_logp", B);
    if (refc == NULL) goto fail;
    refr = sequence_ref(rr_obj, "ref_rejected_logp", B);
    if (refr == NULL) goto fail;
    if (w_obj != Py_None) {
        w = o1p_as_float(w_obj, "weights", 1, NPY_FLOAT64, O1P_ALLOW_INT);
        if (w == NULL) goto fail;
        if (o1p_check_dim(w, "weights", 0, B, "chosen_logp (one weight per pair)") < 0 ||
            o1p_check_finite(w, "weights", 0) < 0)
            goto fail;
        const double *wv = (const double *)PyArray_DATA(w);
        for (npy_intp b = 0; b < B; b++) {
            if (wv[b] < 0) {
                char buf[32];
                snprintf(buf, sizeof buf, "%.9g", wv[b]);
                PyErr_Format(PyExc_ValueError, "weights: must be >= 0, got %s at index %zd", buf, (Py_ssize_t)b);
                goto fail;
            }
        }
    }
    gc = (PyArrayObject *)PyArray_EMPTY(2, PyArray_DIMS(c), NPY_FLOAT32, 0);
    if (gc == NULL) goto fail;
    gr = (PyArrayObject *)PyArray_EMPTY(2, PyArray_DIMS(r), NPY_FLOAT32, 0);
    if (gr == NULL) goto fail;

    dpo_result res = {0};
    int st;
    /* each product was checked below NPY_MAX_INTP / 4, so their sum fits */
    o1p_int work = (o1p_int)(B * Tc) + (o1p_int)(B * Tr);
    O1P_WITHOUT_GIL(work, st = dpo_loss_forward_backward(
                              &cfg, B, Tc, Tr, (const float *)PyArray_DATA(c), (const uint8_t *)PyArray_DATA(mc),
                              (const float *)PyArray_DATA(r), (const uint8_t *)PyArray_DATA(mr),
                              (const double *)PyArray_DATA(refc), (const double *)PyArray_DATA(refr),
                              w ? (const double *)PyArray_DATA(w) : NULL, (float *)PyArray_DATA(gc),
                              (float *)PyArray_DATA(gr), &res));
    if (st == O1P_EVALUE) {
        const char *side = res.bad_which == 1 ? "rejected" : "chosen";
        if (res.bad_which == 2) {
            PyErr_Format(PyExc_ValueError,
                         "ref_chosen_logp: the implicit rewards of pair %zd overflow float64 (beta times "
                         "log-prob minus reference is not finite)",
                         (Py_ssize_t)res.bad_row);
        } else if (res.bad_row >= 0) {
            PyErr_Format(PyExc_ValueError,
                         "%s_mask: row %zd has no valid token while the %s response of that pair has some; "
                         "a response needs at least one token (mask both rows of a padding pair)",
                         side, (Py_ssize_t)res.bad_row, res.bad_which == 1 ? "chosen" : "rejected");
        } else {
            npy_intp T = res.bad_which == 1 ? Tr : Tc, i = res.bad_index;
            float v = ((const float *)PyArray_DATA(res.bad_which == 1 ? r : c))[i];
            PyErr_Format(PyExc_ValueError,
                         "%s_logp: %s at valid position (b=%zd, t=%zd); valid log-probs must be finite "
                         "(mask out a token the policy cannot produce)",
                         side, describe(v), (Py_ssize_t)(i / T), (Py_ssize_t)(i % T));
        }
        goto fail;
    }
    if (st != O1P_OK) {
        o1p_raise_status(st, "dpo_loss");
        goto fail;
    }
    result = Py_BuildValue("(dOO(ddddL))", res.loss, gc, gr, res.margin_mean, res.accuracy, res.chosen_reward_mean,
                           res.rejected_reward_mean, (long long)res.count);
fail:
    Py_XDECREF(c);
    Py_XDECREF(mc);
    Py_XDECREF(r);
    Py_XDECREF(mr);
    Py_XDECREF(refc);
    Py_XDECREF(refr);
    Py_XDECREF(w);
    Py_XDECREF(gc);
    Py_XDECREF(gr);
    return result;
}

PyMethodDef o1p_ppo_methods[] = {
    {"sequence_logprobs", (PyCFunction)(void (*)(void))py_sequence_logprobs, METH_VARARGS | METH_KEYWORDS,
     "sequence_logprobs($module, /, token_logp, mask, reduce='sum')\n--\n\n"
     "Per-sequence sums or means of token log-probs over the mask -> float64[B]."},
    {"sequence_logprobs_backward", (PyCFunction)(void (*)(void))py_sequence_logprobs_backward,
     METH_VARARGS | METH_KEYWORDS,
     "sequence_logprobs_backward($module, /, grad, mask, reduce='sum')\n--\n\n"
     "Gradient of sequence_logprobs -> float32[B,T]."},
    {"ppo_clip_loss", (PyCFunction)(void (*)(void))py_ppo_clip_loss, METH_VARARGS | METH_KEYWORDS,
     "ppo_clip_loss($module, /, logp, ref_logp, advantages, mask, eps_low=0.2, eps_high=0.2, "
     "ratio='sequence_mean', aggregate=None, dual_clip=None, logratio_clamp=None)\n--\n\n"
     "The PPO-clip loss and its gradient -> (loss, grad float32[B,T], (clip_fraction, "
     "dual_clip_fraction, approx_kl, ratio_mean, ratio_min, ratio_max, count))."},
    {"dpo_loss", (PyCFunction)(void (*)(void))py_dpo_loss, METH_VARARGS | METH_KEYWORDS,
     "dpo_loss($module, /, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, chosen_mask, "
     "rejected_mask, beta=0.1, weights=None, length_normalize=False)\n--\n\n"
     "The DPO loss and its gradients -> (loss, grad_chosen float32[B,Tc], grad_rejected float32[B,Tr], "
     "(reward_margin, reward_accuracy, chosen_reward, rejected_reward, count))."},
    {NULL, NULL, 0, NULL},
};
