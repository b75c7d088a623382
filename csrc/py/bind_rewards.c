/* bind_rewards.c: Python bindings of kernels/rewards.c (reference statistics,
 * length-harmonizing reward, weight harmonisation). One validation block per
 * function, then bare pointers to the kernel. */
#include "arrays.h"
#include "bind.h"
#include "rewards.h"

/* lengths: positive finite; correct: finite in [0, 1]; both 1-D, same shape. */
static int lengths_correct(PyObject *lengths_obj, PyObject *correct_obj, PyArrayObject **lengths,
                           PyArrayObject **correct) {
    *lengths = o1p_as_float(lengths_obj, "lengths", 1, NPY_FLOAT64, O1P_ALLOW_INT);
    if (*lengths == NULL) return -1;
    *correct = o1p_as_float(correct_obj, "correct", 1, NPY_FLOAT64, O1P_ALLOW_INT);
    if (*correct == NULL) return -1;
    if (o1p_check_nonempty(*lengths, "lengths") < 0 ||
        o1p_check_same_shape(*correct, "correct", *lengths, "lengths") < 0 ||
        o1p_check_positive(*lengths, "lengths") < 0 || o1p_check_finite(*correct, "correct", 0) < 0)
        return -1;
    const double *c = (const double *)PyArray_DATA(*correct);
    for (npy_intp i = 0; i < PyArray_SIZE(*correct); i++) {
        if (c[i] < 0.0 || c[i] > 1.0) {
            PyErr_Format(PyExc_ValueError, "correct: values must lie in [0, 1], found one outside at index %zd",
                         (Py_ssize_t)i);
            return -1;
        }
    }
    return 0;
}

/* Group codes for S samples from ids (any integers) or offsets[G+1]. Returns
 * the code array; *uniq receives the ids of the groups. */
static PyArrayObject *group_codes(PyObject *group_obj, PyObject *offsets_obj, npy_intp S,
                                  PyArrayObject **uniq, const char *group_name) {
    PyArrayObject *code = NULL, *ids = NULL, *tmp = NULL;
    npy_intp dims[1] = {S};
    if ((group_obj == Py_None) == (offsets_obj == Py_None)) {
        PyErr_Format(PyExc_TypeError, "%s: pass exactly one of %s (problem ids) or offsets",
                     group_name, group_name);
        return NULL;
    }
    code = (PyArrayObject *)PyArray_EMPTY(1, dims, NPY_INT64, 0);
    if (code == NULL) return NULL;
    int64_t *cd = (int64_t *)PyArray_DATA(code);
    if (group_obj != Py_None) {
        ids = o1p_as_index(group_obj, group_name, 1);
        if (ids == NULL) goto fail;
        if (o1p_check_dim(ids, group_name, 0, S, "lengths (one id per sample)") < 0) goto fail;
        tmp = (PyArrayObject *)PyArray_EMPTY(1, dims, NPY_INT64, 0);
        if (tmp == NULL) goto fail;
        o1p_int G = 0;
        int st;
        O1P_WITHOUT_GIL(S, st = rewards_group_codes(S, (const int64_t *)PyArray_DATA(ids), cd,
                                                    (int64_t *)PyArray_DATA(tmp), &G));
        if (st != O1P_OK) {
            o1p_raise_status(st, group_name);
            goto fail;
        }
        npy_intp gdims[1] = {G};
        *uniq = (PyArrayObject *)PyArray_EMPTY(1, gdims, NPY_INT64, 0);
        if (*uniq == NULL) goto fail;
        memcpy(PyArray_DATA(*uniq), PyArray_DATA(tmp), (size_t)G * sizeof(int64_t));
    } else {
        ids = o1p_as_index(offsets_obj, "offsets", 1);
        if (ids == NULL) goto fail;
        npy_intp n = PyArray_SIZE(ids);
        const int64_t *o = (const int64_t *)PyArray_DATA(ids);
        if (n < 2 || o[0] != 0 || o[n - 1] != S) {
            PyErr_Format(PyExc_ValueError,
                         "offsets: must have G+1 >= 2 entries starting at 0 and ending at the number "
                         "of samples %zd",
                         (Py_ssize_t)S);
            goto fail;
        }
        for (npy_intp g = 0; g + 1 < n; g++) {
            if (o[g + 1] <= o[g]) {
                PyErr_Format(PyExc_ValueError,
                             "offsets: problem %zd has no samples (offsets[%zd]=%lld, offsets[%zd]=%lld); "
                             "offsets must be strictly increasing",
                             (Py_ssize_t)g, (Py_ssize_t)g, (long long)o[g], (Py_ssize_t)(g + 1),
                             (long long)o[g + 1]);
                goto fail;
            }
        }
        rewards_codes_from_offsets(n - 1, o, cd);
        *uniq = (PyArrayObject *)PyArray_Arange(0, (double)(n - 1), 1, NPY_INT64);
        if (*uniq == NULL) goto fail;
    }
    Py_XDECREF(ids);
    Py_XDECREF(tmp);
    return code;
fail:
    Py_XDECREF(code);
    Py_XDECREF(ids);
    Py_XDECREF(tmp);
    return NULL;
}

static PyObject *py_reference_stats(PyObject *self, PyObject *args, PyObject *kwds) {
    (void)self;
    static char *kwlist[] = {"lengths", "correct", "group", "offsets", NULL};
    PyObject *lengths_obj, *correct_obj, *group_obj = Py_None, *offsets_obj = Py_None;
    PyArrayObject *lengths = NULL, *correct = NULL, *code = NULL, *ids = NULL;
    PyArrayObject *mean = NULL, *acc = NULL, *count = NULL;
    PyObject *result = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|OO:reference_stats", kwlist, &lengths_obj,
                                     &correct_obj, &group_obj, &offsets_obj))
        return NULL;
    if (lengths_correct(lengths_obj, correct_obj, &lengths, &correct) < 0) goto fail;
    npy_intp S = PyArray_SIZE(lengths);
    code = group_codes(group_obj, offsets_obj, S, &ids, "group");
    if (code == NULL) goto fail;
    npy_intp G = PyArray_SIZE(ids);
    mean = (PyArrayObject *)PyArray_EMPTY(1, &G, NPY_FLOAT64, 0);
    acc = (PyArrayObject *)PyArray_EMPTY(1, &G, NPY_FLOAT64, 0);
    count = (PyArrayObject *)PyArray_EMPTY(1, &G, NPY_INT64, 0);
    if (!mean || !acc || !count) goto fail;
    int st;
    O1P_WITHOUT_GIL(S, st = rewards_group_stats(S, (const double *)PyArray_DATA(lengths),
                                                (const double *)PyArray_DATA(correct),
                                                (const int64_t *)PyArray_DATA(code), G,
                                                (double *)PyArray_DATA(mean), (double *)PyArray_DATA(acc),
                                                (int64_t *)PyArray_DATA(count)));
    if (st != O1P_OK) {
        o1p_raise_status(st, "group: a problem has no samples");
        goto fail;
    }
    result = Py_BuildValue("(OOOOO)", ids, mean, acc, count, code);
fail:
    Py_XDECREF(lengths);
    Py_XDECREF(correct);
    Py_XDECREF(code);
    Py_XDECREF(ids);
    Py_XDECREF(mean);
    Py_XDECREF(acc);
    Py_XDECREF(count);
    return result;
}

static PyObject *py_length_harmonizing_reward(PyObject *self, PyObject *args, PyObject *kwds) {
    (void)self;
    static char *kwlist[] = {"lengths", "correct", "ref_mean_length", "ref_accuracy", "lam", NULL};
    PyObject *lengths_obj, *correct_obj, *rl_obj, *ra_obj, *lam_obj;
    double lam;
    PyArrayObject *lengths = NULL, *correct = NULL, *rl = NULL, *ra = NULL, *out = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOO:length_harmonizing_reward", kwlist,
                                     &lengths_obj, &correct_obj, &rl_obj, &ra_obj, &lam_obj))
        return NULL;
    if (o1p_parse_double(lam_obj, "lam", &lam) < 0) return NULL;
    if (lengths_correct(lengths_obj, correct_obj, &lengths, &correct) < 0) goto fail;
    rl = o1p_as_float(rl_obj, "ref_mean_length", 1, NPY_FLOAT64, O1P_ALLOW_INT);
    if (rl == NULL) goto fail;
    ra = o1p_as_float(ra_obj, "ref_accuracy", 1, NPY_FLOAT64, O1P_ALLOW_INT);
    if (ra == NULL) goto fail;
    if (o1p_check_same_shape(rl, "ref_mean_length", lengths, "lengths") < 0 ||
        o1p_check_same_shape(ra, "ref_accuracy", lengths, "lengths") < 0 ||
        o1p_check_positive(rl, "ref_mean_length") < 0 || o1p_check_finite(ra, "ref_accuracy", 0) < 0 ||
        o1p_check_finite_scalar(lam, "lam") < 0)
        goto fail;
    if (lam < 0) {
        PyErr_SetString(PyExc_ValueError, "lam: must be >= 0 (it is the multiplier of the accuracy constraint)");
        goto fail;
    }
    out = (PyArrayObject *)PyArray_EMPTY(1, PyArray_DIMS(lengths), NPY_FLOAT64, 0);
    if (out == NULL) goto fail;
    npy_intp S = PyArray_SIZE(lengths);
    O1P_WITHOUT_GIL(S, rewards_length_harmonizing(S, (const double *)PyArray_DATA(lengths),
                                                  (const double *)PyArray_DATA(correct),
                                                  (const double *)PyArray_DATA(rl),
                                                  (const double *)PyArray_DATA(ra), lam,
                                                  (double *)PyArray_DATA(out)));
fail:
    Py_XDECREF(lengths);
    Py_XDECREF(correct);
    Py_XDECREF(rl);
    Py_XDECREF(ra);
    return (PyObject *)out;
}

static const char *const normalize_choices[] = {"None", "dataset", "group", NULL};

/* clip[i] as a double. A non-number (TypeError from __float__) becomes the
 * message below; any other exception (KeyboardInterrupt, MemoryError, an
 * error of the object's own __getitem__ or __float__) goes through as is. */
static int clip_bound(PyObject *clip_obj, Py_ssize_t i, double *out) {
    PyObject *v = PySequence_GetItem(clip_obj, i);
    if (v == NULL) return -1;
    *out = PyFloat_AsDouble(v);
    Py_DECREF(v);
    if (*out == -1.0 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_TypeError)) return -1;
        PyErr_Clear();
        PyErr_SetString(PyExc_TypeError, "clip: low and high must be real numbers");
        return -1;
    }
    return 0;
}

static PyObject *py_harmonize_weights(PyObject *self, PyObject *args, PyObject *kwds) {
    (void)self;
    static char *kwlist[] = {"rewards", "clip", "normalize", "group", NULL};
    PyObject *w_obj, *clip_obj = Py_None, *norm_obj = Py_None, *group_obj = Py_None;
    PyArrayObject *w = NULL, *code = NULL, *ids = NULL, *out = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|OOO:harmonize_weights", kwlist, &w_obj,
                                     &clip_obj, &norm_obj, &group_obj))
        return NULL;
    double lo = 0, hi = 0;
    int do_clip = clip_obj != Py_None;
    int normalize = o1p_parse_choice(norm_obj, "normalize", normalize_choices);
    if (normalize < 0) return NULL;
    if (do_clip) {
        if (!PyTuple_Check(clip_obj) && !PyList_Check(clip_obj)) {
            PyErr_Format(PyExc_TypeError, "clip: expected None or a (low, high) pair, got %s",
                         Py_TYPE(clip_obj)->tp_name);
            return NULL;
        }
        if (PySequence_Size(clip_obj) != 2) {
            PyErr_SetString(PyExc_ValueError, "clip: expected a (low, high) pair");
            return NULL;
        }
        if (clip_bound(clip_obj, 0, &lo) < 0 || clip_bound(clip_obj, 1, &hi) < 0) return NULL;
        if (!(lo < hi) || isnan(lo) || isnan(hi)) {
            PyErr_SetString(PyExc_ValueError, "clip: low must be < high (and neither NaN)");
            return NULL;
        }
    }
    w = o1p_as_float(w_obj, "rewards", 1, NPY_FLOAT64, O1P_ALLOW_INT);
    if (w == NULL) goto fail;
    if (o1p_check_nonempty(w, "rewards") < 0 || o1p_check_finite(w, "rewards", 0) < 0) goto fail;
    npy_intp S = PyArray_SIZE(w);
    o1p_int G = 0;
    if (normalize == REWARDS_NORM_GROUP) {
        if (group_obj == Py_None) {
            PyErr_SetString(PyExc_ValueError, "group: required when normalize='group'");
            goto fail;
        }
        code = group_codes(group_obj, Py_None, S, &ids, "group");
        if (code == NULL) goto fail;
        G = PyArray_SIZE(ids);
    } else if (group_obj != Py_None) {
        PyErr_SetString(PyExc_ValueError, "group: only used with normalize='group'");
        goto fail;
    }
    out = (PyArrayObject *)PyArray_EMPTY(1, PyArray_DIMS(w), NPY_FLOAT64, 0);
    if (out == NULL) goto fail;
    int st;
    O1P_WITHOUT_GIL(S, st = rewards_harmonize(S, (const double *)PyArray_DATA(w), do_clip, lo, hi,
                                              normalize, code ? (const int64_t *)PyArray_DATA(code) : NULL,
                                              G, (double *)PyArray_DATA(out)));
    if (st != O1P_OK) {
        Py_CLEAR(out);
        o1p_raise_status(st, "harmonize_weights");
    }
fail:
    Py_XDECREF(w);
    Py_XDECREF(code);
    Py_XDECREF(ids);
    return (PyObject *)out;
}

PyMethodDef o1p_rewards_methods[] = {
    {"reference_stats", (PyCFunction)(void (*)(void))py_reference_stats, METH_VARARGS | METH_KEYWORDS,
     "reference_stats($module, /, lengths, correct, group=None, offsets=None)\n--\n\n"
     "Per-problem reference statistics -> (ids, mean_length, accuracy, count, inverse)."},
    {"length_harmonizing_reward", (PyCFunction)(void (*)(void))py_length_harmonizing_reward,
     METH_VARARGS | METH_KEYWORDS,
     "length_harmonizing_reward($module, /, lengths, correct, ref_mean_length, ref_accuracy, lam)"
     "\n--\n\n"
     "The length-harmonizing reward of each sample -> float64[S]."},
    {"harmonize_weights", (PyCFunction)(void (*)(void))py_harmonize_weights, METH_VARARGS | METH_KEYWORDS,
     "harmonize_weights($module, /, rewards, clip=None, normalize=None, group=None)\n--\n\n"
     "Clip and z-normalise rewards into training weights -> float64[S]."},
    {NULL, NULL, 0, NULL},
};
