/* grader_extract.c: find the final answer in a response: \boxed{..} (last,
 * first or all), "the answer is ..", GSM8K's "#### n", the last math block
 * or the last number. Single forward or backward scans over raw bytes with
 * O(1) extra memory: nesting is tracked with counters and a small fixed stack,
 * so neither length nor brace depth can exhaust the stack or the heap. */
#include <string.h>

#include "grader.h"

/* Boxes nested deeper than this inside other open boxes are ignored (their
 * enclosing box is still found). */
#define BOX_STACK 64
/* Longest answer taken after "answer is" when no sentence end is found. */
#define ANSWER_IS_MAX 2048

typedef struct {
    o1p_int start, end; /* content is text[start:end] */
} span;

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static char lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c; }

static span trim(const char *t, span s) {
    while (s.start < s.end && is_space(t[s.start])) s.start++;
    while (s.end > s.start && is_space(t[s.end - 1])) s.end--;
    return s;
}

/* Length of the command name after a backslash at t[i] (letters only). */
static o1p_int cmd_len(const char *t, o1p_int n, o1p_int i) {
    o1p_int j = i + 1;
    while (j < n && is_alpha(t[j])) j++;
    return j - i - 1;
}

static int is_box_cmd(const char *t, o1p_int i, o1p_int len) {
    return (len == 5 && memcmp(t + i + 1, "boxed", 5) == 0) ||
           (len == 4 && memcmp(t + i + 1, "fbox", 4) == 0) ||
           (len == 8 && memcmp(t + i + 1, "framebox", 8) == 0);
}

/* Argument of "\boxed 5" (no brace): the next run of non-space characters,
 * stopping at '$' and at a sentence-ending period. */
static span bare_box_arg(const char *t, o1p_int n, o1p_int j) {
    span s = {j, j};
    while (s.end < n && !is_space(t[s.end]) && t[s.end] != '$') s.end++;
    while (s.end > s.start && (t[s.end - 1] == '.' || t[s.end - 1] == ',')) s.end--;
    return s;
}

/* One forward pass over the text, calling `visit` for every box that closes
 * (with the number of boxes still open around it). Escaped braces \{ \} and
 * any backslash-char pair are skipped. */
typedef struct {
    int mode;
    span best;
    int found;
    char *out; /* ALL_BOXED: joined output */
    o1p_int out_len;
} box_state;

static void visit_box(box_state *st, const char *t, span s, int enclosing_open) {
    s = trim(t, s);
    if (st->mode == GRADER_EXTRACT_ALL_BOXED) {
        if (enclosing_open > 0) return;
        if (st->out_len > 0) {
            st->out[st->out_len++] = ',';
            st->out[st->out_len++] = ' ';
        }
        memcpy(st->out + st->out_len, t + s.start, (size_t)(s.end - s.start));
        st->out_len += s.end - s.start;
        st->found = 1;
        return;
    }
    if (st->mode == GRADER_EXTRACT_FIRST_BOXED) {
        if (!st->found || s.start < st->best.start) st->best = s;
    } else { /* last: the box that closes last */
        st->best = s;
    }
    st->found = 1;
}

static void scan_boxes(const char *t, o1p_int n, box_state *st) {
    o1p_int open_start[BOX_STACK];
    o1p_int open_depth[BOX_STACK];
    int nopen = 0, skipped = 0; /* skipped: boxes too deep to track */
    o1p_int depth = 0;
    for (o1p_int i = 0; i < n; i++) {
        char c = t[i];
        if (c == '\\') {
            /* "\\boxed" (a doubly escaped command, as in JSON dumps) is a box too */
            if (i + 2 < n && t[i + 1] == '\\' && is_alpha(t[i + 2])) i++;
            o1p_int len = cmd_len(t, n, i);
            if (len == 0) { /* \{ \} \\ \$ ...: not structural */
                i++;
                continue;
            }
            if (is_box_cmd(t, i, len)) {
                o1p_int j = i + 1 + len;
                while (j < n && is_space(t[j])) j++;
                if (j < n && t[j] == '{') {
                    if (nopen < BOX_STACK) {
                        open_start[nopen] = j + 1;
                        open_depth[nopen] = depth;
                        nopen++;
                    } else {
                        skipped++;
                    }
                    depth++;
                    i = j;
                    continue;
                }
                if (j < n) {
                    span s = bare_box_arg(t, n, j);
                    if (s.end > s.start) visit_box(st, t, s, nopen);
                    i = s.end > j ? s.end - 1 : j;
                    continue;
                }
            }
            i += len;
            continue;
        }
        if (c == '{') {
            depth++;
        } else if (c == '}') {
            if (depth == 0) continue; /* unbalanced close: ignore */
            depth--;
            if (nopen > 0 && open_depth[nopen - 1] == depth) {
                nopen--;
                span s = {open_start[nopen], i};
                visit_box(st, t, s, nopen);
            }
        }
    }
    (void)skipped;
}

/* ---- "answer is" ------------------------------------------------------ */

/* Case-insensitive match of the ASCII phrase p at t[i]. */
static int match_ci(const char *t, o1p_int n, o1p_int i, const char *p) {
    o1p_int k = 0;
    for (; p[k]; k++)
        if (i + k >= n || lower(t[i + k]) != p[k]) return 0;
    return 1;
}

/* Skip a closing math delimiter pair: from t[j] (just after "$$", "\[", "\("
 * or "$") find where the block ends. Returns the end index of the content or
 * -1 if it does not close within `limit`. */
static o1p_int find_close(const char *t, o1p_int n, o1p_int j, const char *close, o1p_int limit) {
    o1p_int cl = (o1p_int)strlen(close);
    for (o1p_int k = j; k + cl <= n && k - j <= limit; k++) {
        if (t[k] == '\\' && close[0] != '\\') {
            k++;
            continue;
        }
        if (memcmp(t + k, close, (size_t)cl) == 0) return k;
    }
    return -1;
}

static int extract_answer_is(const char *t, o1p_int n, span *out) {
    static const char *const phrases[] = {"answer is", "answer:", "answer :"};
    o1p_int best = -1, best_end = -1;
    for (int p = 0; p < 3; p++) {
        o1p_int pl = (o1p_int)strlen(phrases[p]);
        for (o1p_int i = n - pl; i >= 0; i--) {
            if (lower(t[i]) == 'a' && match_ci(t, n, i, phrases[p])) {
                if (i > best) {
                    best = i;
                    best_end = i + pl;
                }
                break;
            }
        }
    }
    if (best < 0) return 0;
    o1p_int j = best_end;
    while (j < n && (is_space(t[j]) || t[j] == ':')) j++;
    /* A display block right after the phrase: take it whole. */
    static const char *const opens[] = {"$$", "\\[", "\\(", "$"};
    static const char *const closes[] = {"$$", "\\]", "\\)", "$"};
    for (int d = 0; d < 4; d++) {
        o1p_int ol = (o1p_int)strlen(opens[d]);
        if (j + ol <= n && memcmp(t + j, opens[d], (size_t)ol) == 0) {
            o1p_int e = find_close(t, n, j + ol, closes[d], ANSWER_IS_MAX);
            if (e >= 0) {
                span s = trim(t, (span){j + ol, e});
                if (s.end > s.start) {
                    *out = s;
                    return 1;
                }
            }
            break;
        }
    }
    /* Otherwise up to the end of the line or of the sentence. */
    o1p_int e = j, depth = 0;
    o1p_int limit = j + ANSWER_IS_MAX < n ? j + ANSWER_IS_MAX : n;
    while (e < limit) {
        char c = t[e];
        if (c == '\\') {
            e += 2;
            continue;
        }
        if (c == '{') depth++;
        if (c == '}' && depth > 0) depth--;
        if (c == '\n' && depth == 0) break;
        if (c == '.' && depth == 0 && !(e + 1 < n && is_digit(t[e + 1]))) {
            if (e + 1 >= n || is_space(t[e + 1]) || t[e + 1] == '$') break;
        }
        e++;
    }
    if (e > limit) e = limit;
    span s = trim(t, (span){j, e});
    /* "Final Answer: The largest $n$ is 34": keep what follows the last " is ". */
    for (o1p_int k = s.end - 4; k >= s.start; k--) {
        if (match_ci(t, s.end, k, " is ")) {
            s.start = k + 4;
            break;
        }
    }
    s = trim(t, s);
    while (s.end > s.start && (t[s.end - 1] == '.' || t[s.end - 1] == ',')) s.end--;
    if (s.end <= s.start) return 0;
    *out = s;
    return 1;
}

/* ---- "#### n" ---------------------------------------------------------- */

static int extract_hash(const char *t, o1p_int n, span *out) {
    for (o1p_int i = n - 4; i >= 0; i--) {
        if (t[i] == '#' && memcmp(t + i, "####", 4) == 0) {
            o1p_int j = i + 4, e;
            while (j < n && t[j] == '#') j++;
            for (e = j; e < n && t[e] != '\n'; e++) {
            }
            span s = trim(t, (span){j, e});
            if (s.end <= s.start) return 0;
            *out = s;
            return 1;
        }
    }
    return 0;
}

/* ---- last number -------------------------------------------------------- */

static int extract_last_number(const char *t, o1p_int n, span *out) {
    o1p_int e = n;
    while (e > 0 && !is_digit(t[e - 1])) e--;
    if (e == 0) return 0;
    o1p_int s = e;
    /* digits, decimal points and thousands commas (a comma only before a digit) */
    while (s > 0) {
        char c = t[s - 1];
        if (is_digit(c) || c == '.') {
            s--;
        } else if (c == ',' && s < e && is_digit(t[s]) && s >= 2 && is_digit(t[s - 2])) {
            s--;
        } else {
            break;
        }
    }
    while (s < e && t[s] == ',') s++;
    /* a fraction a/b */
    if (s >= 2 && t[s - 1] == '/' && is_digit(t[s - 2])) {
        s -= 2;
        while (s > 0 && is_digit(t[s - 1])) s--;
    }
    if (s > 0 && t[s - 1] == '-') s--;
    *out = (span){s, e};
    return 1;
}

/* ---- last math block ------------------------------------------------------ */

static int extract_last_math(const char *t, o1p_int n, span *out) {
    int open = 0; /* 0 none, 1 "$", 2 "$$", 3 "\(", 4 "\[" */
    o1p_int cstart = 0;
    int found = 0;
    for (o1p_int i = 0; i < n; i++) {
        char c = t[i];
        if (c == '\\' && i + 1 < n) {
            char d = t[i + 1];
            if (open == 0 && (d == '(' || d == '[')) {
                open = d == '(' ? 3 : 4;
                cstart = i + 2;
            } else if ((open == 3 && d == ')') || (open == 4 && d == ']')) {
                span s = trim(t, (span){cstart, i});
                if (s.end > s.start) {
                    *out = s;
                    found = 1;
                }
                open = 0;
            }
            i++;
            continue;
        }
        if (c == '$') {
            int dbl = i + 1 < n && t[i + 1] == '$';
            if (open == 0) {
                open = dbl ? 2 : 1;
                cstart = i + 1 + dbl;
                i += dbl;
            } else if (open == 1 || (open == 2 && dbl)) {
                span s = trim(t, (span){cstart, i});
                if (s.end > s.start) {
                    *out = s;
                    found = 1;
                }
                if (open == 2) i++;
                open = 0;
            }
        }
    }
    return found;
}

int grader_extract(const char *text, o1p_int n, const int *modes, int nmodes, char *out,
                   o1p_int *out_len) {
    out[0] = '\0';
    *out_len = 0;
    if (text == NULL || n <= 0) return 0;
    for (int m = 0; m < nmodes; m++) {
        span s = {0, 0};
        int ok = 0;
        switch (modes[m]) {
        case GRADER_EXTRACT_LAST_BOXED:
        case GRADER_EXTRACT_FIRST_BOXED: {
            box_state st = {modes[m], {0, 0}, 0, NULL, 0};
            scan_boxes(text, n, &st);
            ok = st.found;
            s = st.best;
            break;
        }
        case GRADER_EXTRACT_ALL_BOXED: {
            /* joined output is never longer than the input: each box costs at
             * least 6 bytes of markup and adds at most 2 bytes of separator */
            box_state st = {modes[m], {0, 0}, 0, out, 0};
            scan_boxes(text, n, &st);
            if (st.found && st.out_len > 0) {
                out[st.out_len] = '\0';
                *out_len = st.out_len;
                return 1;
            }
            out[0] = '\0';
            continue;
        }
        case GRADER_EXTRACT_ANSWER_IS:
            ok = extract_answer_is(text, n, &s);
            break;
        case GRADER_EXTRACT_HASH:
            ok = extract_hash(text, n, &s);
            break;
        case GRADER_EXTRACT_LAST_NUMBER:
            ok = extract_last_number(text, n, &s);
            break;
        case GRADER_EXTRACT_LAST_MATH:
            ok = extract_last_math(text, n, &s);
            break;
        default:
            ok = 0;
        }
        if (ok && s.end > s.start) {
            memcpy(out, text + s.start, (size_t)(s.end - s.start));
            out[s.end - s.start] = '\0';
            *out_len = s.end - s.start;
            return 1;
        }
    }
    return 0;
}
