/* bind_grader.c: Python bindings of the answer grader (kernels/grader*.c).
 * Strings are turned into UTF-8 buffers while the GIL is held (lone
 * surrogates are kept with "surrogatepass"), then the GIL is released and the
 * work is split over threads. */
#include "arrays.h"
#include "bind.h"
#include "grader.h"

/* UTF-8 views of a sequence of str (None allowed when allow_none).
 * Owns: seq (a tuple copy, so the caller's list may change meanwhile) and
 * keep (bytes objects made for strings with lone surrogates). */
typedef struct {
    PyObject *seq, *keep;
    Py_ssize_t n;
    const char **ptr;
    o1p_int *len;
    o1p_int total;
} utf8_batch;

static void batch_free(utf8_batch *b) {
    Py_XDECREF(b->seq);
    Py_XDECREF(b->keep);
    PyMem_Free((void *)b->ptr);
    PyMem_Free(b->len);
    memset(b, 0, sizeof *b);
}

static int batch_init(utf8_batch *b, PyObject *obj, const char *name, int allow_none) {
    memset(b, 0, sizeof *b);
    if (PyUnicode_Check(obj) || PyBytes_Check(obj) || !PySequence_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s: expected a sequence of str, got %s", name, Py_TYPE(obj)->tp_name);
        return -1;
    }
    b->seq = PySequence_Tuple(obj);
    if (b->seq == NULL) {
        /* not iterable after all: say so; anything else (KeyboardInterrupt,
         * MemoryError, an error of the object's own) goes through as is */
        if (!PyErr_ExceptionMatches(PyExc_TypeError)) return -1;
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: expected a sequence of str, got %s", name, Py_TYPE(obj)->tp_name);
        return -1;
    }
    b->n = PyTuple_GET_SIZE(b->seq);
    b->ptr = (const char **)PyMem_Calloc((size_t)(b->n ? b->n : 1), sizeof(char *));
    b->len = (o1p_int *)PyMem_Calloc((size_t)(b->n ? b->n : 1), sizeof(o1p_int));
    b->keep = PyList_New(0);
    if (!b->ptr || !b->len || !b->keep) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t i = 0; i < b->n; i++) {
        PyObject *s = PyTuple_GET_ITEM(b->seq, i);
        if (s == Py_None && allow_none) continue;
        if (!PyUnicode_Check(s)) {
            PyErr_Format(PyExc_TypeError, "%s[%zd]: expected str%s, got %s", name, i,
                         allow_none ? " or None" : "", Py_TYPE(s)->tp_name);
            goto fail;
        }
        Py_ssize_t n;
        const char *p = PyUnicode_AsUTF8AndSize(s, &n);
        if (p == NULL) { /* lone surrogates: keep them as 3-byte sequences */
            if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) goto fail;
            PyErr_Clear();
            PyObject *bytes = PyUnicode_AsEncodedString(s, "utf-8", "surrogatepass");
            if (bytes == NULL) goto fail;
            if (PyList_Append(b->keep, bytes) < 0) {
                Py_DECREF(bytes);
                goto fail;
            }
            Py_DECREF(bytes);
            p = PyBytes_AS_STRING(bytes);
            n = PyBytes_GET_SIZE(bytes);
        }
        b->ptr[i] = p;
        b->len[i] = n;
        b->total += n;
    }
    return 0;
fail:
    batch_free(b);
    return -1;
}

/* Extraction modes: a tuple of ints in [0, GRADER_EXTRACT_NMODES). */
static int parse_modes(PyObject *obj, int *modes, int *nmodes) {
    *nmodes = 0;
    if (obj == Py_None) return 0;
    PyObject *t = PySequence_Tuple(obj);
    if (t == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_TypeError)) return -1;
        PyErr_Clear();
        PyErr_SetString(PyExc_TypeError, "modes: expected a sequence of int");
        return -1;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(t);
    if (n > GRADER_EXTRACT_NMODES * 4) {
        Py_DECREF(t);
        PyErr_SetString(PyExc_ValueError, "modes: too many modes");
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        long m = PyLong_AsLong(PyTuple_GET_ITEM(t, i));
        if ((m == -1 && PyErr_Occurred()) || m < 0 || m >= GRADER_EXTRACT_NMODES) {
            /* not an int (TypeError) or a huge one (OverflowError): replaced
             * below; any other exception goes through */
            if (PyErr_Occurred()) {
                if (!PyErr_ExceptionMatches(PyExc_TypeError) && !PyErr_ExceptionMatches(PyExc_OverflowError)) {
                    Py_DECREF(t);
                    return -1;
                }
                PyErr_Clear();
            }
            Py_DECREF(t);
            PyErr_Format(PyExc_ValueError, "modes: entry %zd is not a valid mode id", i);
            return -1;
        }
        modes[(*nmodes)++] = (int)m;
    }
    Py_DECREF(t);
    return 0;
}

typedef struct {
    o1p_int n;
    const char *const *ptr;
    const o1p_int *len;
    const int *modes;
    int nmodes;
    char **out;
    o1p_int *olen;
    uint8_t *found;
    int nthreads;
} extract_job;

static void run_extract(extract_job *j) {
    O1P_OMP(parallel for num_threads(j->nthreads) schedule(dynamic, 8))
    for (o1p_int i = 0; i < j->n; i++) {
        j->found[i] = j->ptr[i] ? (uint8_t)grader_extract(j->ptr[i], j->len[i], j->modes, j->nmodes,
                                                          j->out[i], &j->olen[i])
                                : 0;
    }
}

/* grader_extract(texts, modes) -> list of str or None */
static PyObject *py_grader_extract(PyObject *self, PyObject *args, PyObject *kwds) {
    (void)self;
    static char *kwlist[] = {"texts", "modes", NULL};
    PyObject *texts_obj, *modes_obj;
    utf8_batch b;
    int modes[GRADER_EXTRACT_NMODES * 4], nmodes;
    char *arena = NULL, **out = NULL;
    o1p_int *olen = NULL;
    uint8_t *found = NULL;
    PyObject *result = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO:grader_extract", kwlist, &texts_obj, &modes_obj))
        return NULL;
    if (parse_modes(modes_obj, modes, &nmodes) < 0) return NULL;
    if (batch_init(&b, texts_obj, "texts", 0) < 0) return NULL;
    o1p_int n = b.n;
    arena = (char *)PyMem_Malloc((size_t)(b.total + n + 1));
    out = (char **)PyMem_Calloc((size_t)(n ? n : 1), sizeof(char *));
    olen = (o1p_int *)PyMem_Calloc((size_t)(n ? n : 1), sizeof(o1p_int));
    found = (uint8_t *)PyMem_Calloc((size_t)(n ? n : 1), 1);
    if (!arena || !out || !olen || !found) {
        PyErr_NoMemory();
        goto fail;
    }
    /* each answer is at most as long as its text: one buffer holds them all */
    o1p_int off = 0;
    for (o1p_int i = 0; i < n; i++) {
        out[i] = arena + off;
        off += b.len[i] + 1;
    }
    extract_job job = {n, b.ptr, b.len, modes, nmodes, out, olen, found, o1p_threads_for(n, 64)};
    O1P_WITHOUT_GIL(b.total + n * 64, run_extract(&job));
    result = PyList_New(n);
    if (!result) goto fail;
    for (o1p_int i = 0; i < n; i++) {
        PyObject *s;
        if (found[i]) {
            s = PyUnicode_DecodeUTF8(out[i], olen[i], "surrogatepass");
            if (s == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                /* a cut through a multi-byte character */
                PyErr_Clear();
                s = PyUnicode_DecodeUTF8(out[i], olen[i], "replace");
            }
            if (s == NULL) {
                Py_CLEAR(result);
                goto fail;
            }
        } else {
            s = Py_None;
            Py_INCREF(s);
        }
        PyList_SET_ITEM(result, i, s);
    }
fail:
    batch_free(&b);
    PyMem_Free(arena);
    PyMem_Free(out);
    PyMem_Free(olen);
    PyMem_Free(found);
    return result;
}

/* grader_compare(predictions, golds, modes, rtol, strict_fractions, ordered_lists)
 * -> (verdict int8[S], found bool[S]) */
static PyObject *py_grader_compare(PyObject *self, PyObject *args, PyObject *kwds) {
    (void)self;
    static char *kwlist[] = {"predictions", "golds", "modes", "rtol", "strict_fractions", "ordered_lists", NULL};
    PyObject *pred_obj, *gold_obj, *modes_obj = Py_None, *rtol_obj = NULL;
    int strict = 0, ordered = 0;
    utf8_batch bp, bg;
    int modes[GRADER_EXTRACT_NMODES * 4], nmodes;
    PyArrayObject *verdict = NULL, *found = NULL;
    PyObject *result = NULL;
    memset(&bg, 0, sizeof bg);
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|OOpp:grader_compare", kwlist, &pred_obj, &gold_obj,
                                     &modes_obj, &rtol_obj, &strict, &ordered))
        return NULL;
    grader_opts opts;
    grader_opts_default(&opts);
    if (rtol_obj != NULL && rtol_obj != Py_None) {
        if (o1p_parse_double(rtol_obj, "rtol", &opts.rtol) < 0) return NULL;
        if (!(opts.rtol >= 0.0 && opts.rtol < 1.0)) {
            PyErr_Format(PyExc_ValueError, "rtol: must be in [0, 1), got %R", rtol_obj);
            return NULL;
        }
    }
    opts.strict_fractions = strict;
    opts.ordered_lists = ordered;
    if (parse_modes(modes_obj, modes, &nmodes) < 0) return NULL;
    if (batch_init(&bp, pred_obj, "predictions", 1) < 0) return NULL;
    if (batch_init(&bg, gold_obj, "golds", 0) < 0) goto fail;
    if (bg.n != bp.n) {
        PyErr_Format(PyExc_ValueError, "golds: length %zd does not match predictions (%zd)", bg.n, bp.n);
        goto fail;
    }
    npy_intp dims[1] = {bp.n};
    verdict = (PyArrayObject *)PyArray_EMPTY(1, dims, NPY_INT8, 0);
    found = (PyArrayObject *)PyArray_ZEROS(1, dims, NPY_BOOL, 0);
    if (!verdict || !found) goto fail;
    int st;
    int nt = o1p_threads_for(bp.n, 32);
    O1P_WITHOUT_GIL(bp.total + bg.total + bp.n * 4096,
                    st = grader_compare_many(bp.n, bp.ptr, bp.len, bg.ptr, bg.len, modes, nmodes, &opts, nt,
                                             (int8_t *)PyArray_DATA(verdict), (uint8_t *)PyArray_DATA(found)));
    if (st != O1P_OK) {
        o1p_raise_status(st, "grading");
        goto fail;
    }
    result = Py_BuildValue("(OO)", verdict, found);
fail:
    batch_free(&bp);
    batch_free(&bg);
    Py_XDECREF(verdict);
    Py_XDECREF(found);
    return result;
}

/* grader_normalize(answer) -> str: the form the comparison parses */
static PyObject *py_grader_normalize(PyObject *self, PyObject *arg) {
    (void)self;
    if (!PyUnicode_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "answer: expected str, got %s", Py_TYPE(arg)->tp_name);
        return NULL;
    }
    PyObject *bytes = PyUnicode_AsEncodedString(arg, "utf-8", "surrogatepass");
    if (bytes == NULL) return NULL;
    o1p_int n = PyBytes_GET_SIZE(bytes), cap = 4 * n + 64; /* n <= the limit: no overflow */
    if (n > GRADER_NORMALIZE_MAX_LEN) {
        Py_DECREF(bytes);
        PyErr_Format(PyExc_ValueError,
                     "answer: %lld bytes of UTF-8 is longer than the grader's limit of %lld bytes "
                     "for one answer (GRADER_NORMALIZE_MAX_LEN, set by its 256 MiB scratch "
                     "arena); normalise a shorter text",
                     (long long)n, (long long)GRADER_NORMALIZE_MAX_LEN);
        return NULL;
    }
    char *out = (char *)PyMem_Malloc((size_t)cap);
    PyObject *result = NULL;
    if (out == NULL) {
        PyErr_NoMemory();
    } else {
        o1p_int m = grader_normalize(NULL, PyBytes_AS_STRING(bytes), n, out, cap);
        if (m < 0) {
            PyErr_NoMemory();
        } else {
            result = PyUnicode_DecodeUTF8(out, m, "surrogatepass");
            if (result == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                PyErr_Clear();
                result = PyUnicode_DecodeUTF8(out, m, "replace");
            }
        }
    }
    PyMem_Free(out);
    Py_DECREF(bytes);
    return result;
}

PyMethodDef o1p_grader_methods[] = {
    {"grader_extract", (PyCFunction)(void (*)(void))py_grader_extract, METH_VARARGS | METH_KEYWORDS,
     "grader_extract($module, /, texts, modes)\n--\n\n"
     "The final answer of each text -> list of str or None."},
    {"grader_compare", (PyCFunction)(void (*)(void))py_grader_compare, METH_VARARGS | METH_KEYWORDS,
     "grader_compare($module, /, predictions, golds, modes=None, rtol=1e-06, "
     "strict_fractions=False, ordered_lists=False)\n--\n\n"
     "Grade predictions against gold answers -> (verdict int8[S], found bool[S])."},
    {"grader_normalize", py_grader_normalize, METH_O,
     "grader_normalize($module, answer, /)\n--\n\n"
     "The normalised form of an answer, as the comparison parses it -> str."},
    {NULL, NULL, 0, NULL},
};
