/* fuzz_grader.c: libFuzzer harness of the answer grader (csrc/kernels/grader_*.c),
 * the only parser of untrusted text in the package. The first input byte picks
 * the target and its options, the rest is the text; for comparisons a 0xFF
 * byte splits prediction from gold. Built with ASan + UBSan by run.sh; any
 * crash, out-of-bounds access, leak or undefined behaviour stops the run and
 * leaves the input in crashes/ (replayed by tests/test_fuzz_regressions.py). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "grader.h"

static grader_ctx *ctx;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    if (ctx == NULL) ctx = grader_ctx_new(); /* reused: its arena must reset cleanly */
    uint8_t sel = data[0];
    const char *text = (const char *)data + 1;
    o1p_int n = (o1p_int)size - 1;
    /* copies of exactly n bytes (no NUL): reads past the end are caught by ASan */
    char *buf = malloc(n ? (size_t)n : 1);
    if (buf == NULL) return 0;
    memcpy(buf, text, (size_t)n);
    switch (sel % 3) {
    case 0: { /* extraction under one to three modes */
        int modes[3] = {(sel >> 2) % GRADER_EXTRACT_NMODES, (sel >> 4) % GRADER_EXTRACT_NMODES,
                        GRADER_EXTRACT_LAST_NUMBER};
        char *out = malloc((size_t)n + 1);
        o1p_int out_len = -1;
        if (out) {
            int found = grader_extract(buf, n, modes, 1 + (sel >> 6) % 3, out, &out_len);
            if (found && (out_len < 0 || out[out_len] != '\0')) abort();
            if (!found && out_len != 0) abort();
            /* all_boxed joins boxes with ", ": longer than n only in that mode */
            if (out_len > n && modes[0] != GRADER_EXTRACT_ALL_BOXED) abort();
            free(out);
        }
        break;
    }
    case 1: { /* comparison: pred 0xFF gold */
        const char *sep = memchr(buf, 0xFF, (size_t)n);
        o1p_int np_ = sep ? (o1p_int)(sep - buf) : n / 2;
        o1p_int off = sep ? np_ + 1 : np_;
        grader_opts o;
        grader_opts_default(&o);
        o.strict_fractions = (sel >> 2) & 1;
        o.ordered_lists = (sel >> 3) & 1;
        o.rtol = (sel >> 4) & 1 ? 0.0 : 1e-6;
        int v = grader_compare(ctx, buf, np_, buf + off, n - off, &o);
        if (v != GRADER_EQUAL && v != GRADER_NOT_EQUAL && v != GRADER_UNKNOWN) abort();
        break;
    }
    default: { /* normalisation into a buffer of any capacity (0..2n+16) */
        o1p_int cap = (sel >> 2) & 1 ? 2 * n + 16 : (sel >> 3) % (n + 2);
        char *out = malloc(cap ? (size_t)cap : 1);
        if (out) {
            o1p_int len = grader_normalize(ctx, buf, n, out, cap);
            if (len >= cap || len < -1) abort();
            free(out);
        }
        break;
    }
    }
    free(buf);
    return 0;
}
