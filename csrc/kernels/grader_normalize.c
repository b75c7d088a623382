/* grader_normalize.c: the answer normaliser. Compatible in spirit with the
 * Hendrycks MATH / PRM800K normalisers (\text{}, \left/\right, \!, degrees,
 * \$ and \%, dfrac/tfrac, units, thousands separators, "million"), but it
 * keeps the LaTeX structure for the parser instead of patching strings: the
 * shorthands \frac12 and \sqrt3 and the "x =" prefix are read by the parser.
 * Every pass is a linear scan into a fresh arena buffer; nothing recurses. */
#include <string.h>

#include "grader_internal.h"

#define THOUSANDS_MARK '\x01' /* "{,}" and ",\!": a comma that is surely a thousands separator */
#define UNWRAP_STACK 64
#define UNIT_LOOKAHEAD 80

typedef struct {
    char *b;
    o1p_int n, cap;
} sbuf;

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

static void put(sbuf *o, char c) {
    if (o->n < o->cap) o->b[o->n++] = c;
}
static void puts_(sbuf *o, const char *s) {
    while (*s) put(o, *s++);
}
static void putn(sbuf *o, const char *s, o1p_int n) {
    for (o1p_int i = 0; i < n; i++) put(o, s[i]);
}

static int name_is(const char *s, o1p_int len, const char *name) {
    return (o1p_int)strlen(name) == len && memcmp(s, name, (size_t)len) == 0;
}
static int name_in(const char *s, o1p_int len, const char *const *names) {
    for (int k = 0; names[k]; k++)
        if (name_is(s, len, names[k])) return 1;
    return 0;
}

/* Index of the brace matching s[i] == '{' within [i, b), or -1. Escaped
 * braces do not count. */
static o1p_int match_brace(const char *s, o1p_int i, o1p_int b) {
    o1p_int depth = 0;
    for (o1p_int k = i; k < b; k++) {
        if (s[k] == '\\') {
            k++;
            continue;
        }
        if (s[k] == '{') depth++;
        if (s[k] == '}' && --depth == 0) return k;
    }
    return -1;
}

/* ---- pass A: strip wrappers around the whole answer ---------------------- */

static void unwrap(const char *s, o1p_int *pa, o1p_int *pb) {
    o1p_int a = *pa, b = *pb;
    for (int iter = 0; iter < 16; iter++) {
        o1p_int a0 = a, b0 = b;
        while (a < b && is_space(s[a])) a++;
        while (b > a && is_space(s[b - 1])) b--;
        while (b > a && (s[b - 1] == '.' || s[b - 1] == ',' || s[b - 1] == ';' ||
                         s[b - 1] == '\n')) {
            if (b - a >= 2 && s[b - 2] == '\\') break; /* "\," "\;" are spaces */
            b--;
        }
        while (b > a && is_space(s[b - 1])) b--;
        if (b - a >= 2 && s[b - 2] == '\\' && s[b - 1] == '.') b -= 2;
        if (a < b && s[a] == '=') a++;
        if (b - a >= 2 && s[a] == '$' && s[b - 1] == '$') {
            a++;
            b--;
        } else if (b - a >= 4 && s[a] == '\\' && s[b - 2] == '\\' &&
                   ((s[a + 1] == '(' && s[b - 1] == ')') || (s[a + 1] == '[' && s[b - 1] == ']'))) {
            a += 2;
            b -= 2;
        } else if (b - a >= 2 && s[a] == '{' && match_brace(s, a, b) == b - 1) {
            a++;
            b--;
        } else if (b - a > 6 && s[a] == '\\') {
            o1p_int k = a + 1;
            while (k < b && is_alpha(s[k])) k++;
            static const char *const boxes[] = {"boxed", "fbox", "framebox", NULL};
            if (name_in(s + a + 1, k - a - 1, boxes)) {
                o1p_int j = k;
                while (j < b && is_space(s[j])) j++;
                if (j < b && s[j] == '{' && match_brace(s, j, b) == b - 1) {
                    a = j + 1;
                    b--;
                }
            }
        }
        if (a == a0 && b == b0) break;
    }
    *pa = a;
    *pb = b;
}

/* ---- pass B: commands, symbols, Unicode ------------------------------------ */

static const char *const DROP_CMDS[] = {
    "left", "right", "bigl", "bigr", "Bigl", "Bigr", "big", "Big", "bigg", "Bigg", "biggl", "biggr",
    "Biggl", "Biggr", "displaystyle", "textstyle", "scriptstyle", "limits", "nolimits", "middle",
    "mathstrut", "strut", "nonumber", "notag", "hfill", "relax", "ensuremath", NULL};
static const char *const SPACE_CMDS[] = {"quad", "qquad", "enspace", "thinspace", "medspace",
                                         "thickspace", "space", "noindent", "newline", NULL};
static const char *const UNWRAP_CMDS[] = {
    "text", "textbf", "textit", "textrm", "textsf", "texttt", "textnormal", "textup", "mbox",
    "hbox", "mathrm", "mathbf", "mathit", "mathsf", "mathtt", "mathnormal", "operatorname",
    "boxed", "fbox", "framebox", "emph", "boldsymbol", "bm", "pmb", "textmd", "mathup", NULL};

typedef struct {
    const char *utf8;
    const char *latex;
} umap;

/* Unicode the models write, as LaTeX (a trailing space ends a command name). */
static const umap UNICODE[] = {
    {"\xCF\x80", "\\pi "},      {"\xE2\x88\x9A", "\\sqrt"},  {"\xE2\x88\x92", "-"},
    {"\xE2\x80\x93", "-"},      {"\xC3\x97", "\\cdot "},     {"\xC2\xB7", "\\cdot "},
    {"\xE2\x8B\x85", "\\cdot "}, {"\xE2\x88\x99", "\\cdot "}, {"\xC3\xB7", "\\div "},
    {"\xE2\x89\xA4", "\\le "},  {"\xE2\x89\xA5", "\\ge "},   {"\xE2\x89\xA0", "\\ne "},
    {"\xE2\x88\x9E", "\\infty "}, {"\xE2\x88\xAA", "\\cup "}, {"\xE2\x88\xA9", "\\cap "},
    {"\xC2\xB0", ""},           {"\xC2\xB2", "^2"},          {"\xC2\xB3", "^3"},
    {"\xC2\xB1", "\\pm "},      {"\xE2\x88\x88", "\\in "},   {"\xE2\x82\xAC", ""},
    {"\xC2\xA3", ""},           {"\xC2\xA5", ""},            {"\xC2\xA0", " "},
    {"\xE2\x80\x89", " "},      {"\xE2\x80\xAF", " "},       {"\xE2\x80\x8B", ""},
    {"\xEF\xBC\x8C", ","},      {"\xE3\x80\x81", ","},       {"\xEF\xBC\x88", "("},
    {"\xEF\xBC\x89", ")"},      {"\xEF\xBC\x9A", ":"},       {NULL, NULL}};

/* After '^' at s[i]: length of "^\circ", "^{\circ}" (spaces allowed) or 0. */
static o1p_int degree_len(const char *s, o1p_int i, o1p_int n) {
    o1p_int k = i + 1;
    while (k < n && s[k] == ' ') k++;
    int brace = k < n && s[k] == '{';
    if (brace) k++;
    while (k < n && s[k] == ' ') k++;
    if (k + 5 <= n && memcmp(s + k, "\\circ", 5) == 0 && !(k + 5 < n && is_alpha(s[k + 5]))) {
        k += 5;
    } else {
        return 0;
    }
    while (k < n && s[k] == ' ') k++;
    if (brace) {
        if (k < n && s[k] == '}') k++;
        else return 0;
    }
    return k - i;
}

static void pass_commands(const char *s, o1p_int n, sbuf *o) {
    o1p_int depth = 0;
    o1p_int unwrap_at[UNWRAP_STACK];
    int nun = 0;
    for (o1p_int i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\') {
            o1p_int j = i + 1;
            /* "\\frac" (a doubly escaped command) is a command */
            if (j + 1 < n && s[j] == '\\' && is_alpha(s[j + 1])) j++;
            o1p_int k = j;
            while (k < n && is_alpha(s[k])) k++;
            o1p_int len = k - j;
            const char *nm = s + j;
            if (len == 0) {
                if (j >= n) break; /* lone trailing backslash */
                char d = s[j];
                if (d == ',' || d == ';' || d == ':' || d == '>' || d == ' ' || d == '\n' || d == '~') {
                    put(o, ' ');
                } else if (d == '!') {
                    if (o->n > 0 && o->b[o->n - 1] == ',') {
                        o->b[o->n - 1] = THOUSANDS_MARK; /* "10,\!000" */
                        while (j + 1 < n && s[j + 1] == ' ') j++;
                    }
                } else if (d == '%' || d == '$' || d == '"') {
                    /* percent and currency signs are dropped */
                } else if (d == '\\') {
                    puts_(o, "\\\\ ");
                } else if (d == '|') {
                    put(o, '|');
                } else {
                    put(o, '\\');
                    put(o, d);
                }
                i = j;
                continue;
            }
            i = k - 1;
            if (name_in(nm, len, DROP_CMDS)) {
                if ((name_is(nm, len, "left") || name_is(nm, len, "right")) && k < n && s[k] == '.') i = k;
                continue;
            }
            if (name_in(nm, len, SPACE_CMDS)) {
                put(o, ' ');
                continue;
            }
            /* "\quadx_2" written without a space: the spacing command, then x */
            if (len > 4 && memcmp(nm, "quad", 4) == 0) {
                put(o, ' ');
                i = j + 3;
                continue;
            }
            if (len > 5 && memcmp(nm, "qquad", 5) == 0) {
                put(o, ' ');
                i = j + 4;
                continue;
            }
            if (name_is(nm, len, "hspace") || name_is(nm, len, "vspace") || name_is(nm, len, "label") ||
                name_is(nm, len, "tag")) {
                o1p_int m = k;
                while (m < n && s[m] == ' ') m++;
                if (m < n && s[m] == '{') {
                    o1p_int e = match_brace(s, m, n);
                    if (e > 0) i = e;
                }
                put(o, ' ');
                continue;
            }
            if (name_in(nm, len, UNWRAP_CMDS)) {
                o1p_int m = k;
                while (m < n && s[m] == ' ') m++;
                if (m < n && s[m] == '{') {
                    if (nun < UNWRAP_STACK) {
                        unwrap_at[nun++] = depth;
                    } else {
                        put(o, '{'); /* too deep to track: keep the group */
                    }
                    depth++;
                    i = m;
                } else {
                    put(o, ' ');
                }
                continue;
            }
            if (name_is(nm, len, "circ") || name_is(nm, len, "degree") || name_is(nm, len, "degrees")) {
                continue;
            }
            if (name_is(nm, len, "dfrac") || name_is(nm, len, "tfrac") || name_is(nm, len, "cfrac")) {
                puts_(o, "\\frac");
            } else if (name_is(nm, len, "dbinom") || name_is(nm, len, "tbinom")) {
                puts_(o, "\\binom");
            } else if (name_is(nm, len, "leq") || name_is(nm, len, "leqslant") || name_is(nm, len, "leqq") ||
                       name_is(nm, len, "le")) {
                puts_(o, "\\le ");
            } else if (name_is(nm, len, "geq") || name_is(nm, len, "geqslant") || name_is(nm, len, "geqq") ||
                       name_is(nm, len, "ge")) {
                puts_(o, "\\ge ");
            } else if (name_is(nm, len, "neq") || name_is(nm, len, "ne")) {
                puts_(o, "\\ne ");
            } else if (name_is(nm, len, "lt")) {
                put(o, '<');
            } else if (name_is(nm, len, "gt")) {
                put(o, '>');
            } else if (name_is(nm, len, "cdot") || name_is(nm, len, "times") || name_is(nm, len, "ast")) {
                puts_(o, "\\cdot ");
            } else if (name_is(nm, len, "infin")) {
                puts_(o, "\\infty ");
            } else if (name_is(nm, len, "cdots") || name_is(nm, len, "ldots")) {
                puts_(o, "\\dots ");
            } else if (name_is(nm, len, "mid") || name_is(nm, len, "vert") || name_is(nm, len, "lvert") ||
                       name_is(nm, len, "rvert")) {
                put(o, '|');
            } else if (name_is(nm, len, "lbrace")) {
                puts_(o, "\\{");
            } else if (name_is(nm, len, "rbrace")) {
                puts_(o, "\\}");
            } else if (name_is(nm, len, "colon")) {
                put(o, ':');
            } else {
                put(o, '\\');
                putn(o, nm, len);
                /* end the command name so that "\pi r" stays two tokens */
                if (k < n && s[k] == ' ') put(o, ' ');
            }
            continue;
        }
        if (c == '$' || c == '%' || c == '"') continue; /* currency, percent, quotes */
        if (c == '{') {
            o1p_int k = i + 1; /* "{,}" and "{ , }" */
            while (k < n && s[k] == ' ') k++;
            if (k < n && s[k] == ',') {
                k++;
                while (k < n && s[k] == ' ') k++;
                if (k < n && s[k] == '}') {
                    while (o->n > 0 && o->b[o->n - 1] == ' ') o->n--;
                    put(o, THOUSANDS_MARK);
                    i = k;
                    while (i + 1 < n && s[i + 1] == ' ') i++;
                    continue;
                }
            }
            depth++;
            put(o, '{');
            continue;
        }
        if (c == '}') {
            if (depth > 0) depth--;
            if (nun > 0 && unwrap_at[nun - 1] == depth) {
                nun--;
                continue;
            }
            put(o, '}');
            continue;
        }
        if (c == '^') {
            o1p_int dl = degree_len(s, i, n);
            if (dl) {
                i += dl - 1;
                continue;
            }
            put(o, '^');
            continue;
        }
        if (is_space(c)) {
            put(o, ' ');
            continue;
        }
        if ((unsigned char)c >= 0x80) {
            int hit = 0;
            for (int u = 0; UNICODE[u].utf8; u++) {
                o1p_int ul = (o1p_int)strlen(UNICODE[u].utf8);
                if (i + ul <= n && memcmp(s + i, UNICODE[u].utf8, (size_t)ul) == 0) {
                    puts_(o, UNICODE[u].latex);
                    i += ul - 1;
                    hit = 1;
                    break;
                }
            }
            if (!hit) put(o, c);
            continue;
        }
        /* ASCII relations written out */
        if ((c == '<' || c == '>' || c == '!') && i + 1 < n && s[i + 1] == '=') {
            puts_(o, c == '<' ? "\\le " : c == '>' ? "\\ge " : "\\ne ");
            i++;
            continue;
        }
        put(o, c);
    }
}

/* ---- pass C: words (units, percent, "and"/"or", "million") ------------------ */

static const char *const UNIT_WORDS[] = {
    "unit", "units", "sq", "square", "cubic", "cm", "centimeter", "centimeters", "centimetre",
    "centimetres", "mm", "millimeter", "millimeters", "km", "kilometer", "kilometers", "meter",
    "meters", "metre", "metres", "inch", "inches", "foot", "feet", "ft", "yard", "yards", "mile",
    "miles", "mph", "second", "seconds", "sec", "secs", "minute", "minutes", "min", "mins", "hour",
    "hours", "hr", "hrs", "day", "days", "week", "weeks", "month", "months", "year", "years",
    "degree", "degrees", "deg", "dollar", "dollars", "cent", "cents", "yuan", "euro", "euros",
    "pound", "pounds", "lb", "lbs", "kg", "kilogram", "kilograms", "gram", "grams", "liter",
    "liters", "litre", "litres", "ml", "gallon", "gallons", "ounce", "ounces", "oz", "percent",
    "percentage", "pct", "people", "persons", "students", "times", "ways", "bananas", NULL};

static int word_at(const char *s, o1p_int n, o1p_int i, o1p_int *end) {
    o1p_int k = i;
    while (k < n && is_alpha(s[k])) k++;
    *end = k;
    return k > i;
}

/* Is the unit word at s[i:e] followed only by units, powers and spaces up to
 * the end of the element? Returns the end of that tail, or -1. */
static o1p_int unit_tail(const char *s, o1p_int n, o1p_int e) {
    o1p_int k = e, limit = e + UNIT_LOOKAHEAD;
    while (k < n && k < limit) {
        char c = s[k];
        if (c == ',' || c == ';' || c == ')' || c == ']' || c == THOUSANDS_MARK) return k;
        if (c == ' ' || c == '^' || c == '{' || c == '}' || c == '/' || c == '.' || is_digit(c)) {
            k++;
            continue;
        }
        if (is_alpha(c)) {
            o1p_int we;
            word_at(s, n, k, &we);
            if (!name_in(s + k, we - k, UNIT_WORDS)) return -1;
            k = we;
            continue;
        }
        return -1;
    }
    return k >= n ? n : -1;
}

static void pass_words(const char *s, o1p_int n, sbuf *o) {
    for (o1p_int i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\') { /* copy command names untouched */
            put(o, c);
            if (i + 1 < n) put(o, s[++i]);
            while (i + 1 < n && is_alpha(s[i]) && is_alpha(s[i + 1])) put(o, s[++i]);
            continue;
        }
        if (!is_alpha(c) || (i > 0 && is_alpha(s[i - 1]))) {
            put(o, c);
            continue;
        }
        o1p_int e;
        word_at(s, n, i, &e);
        const char *w = s + i;
        o1p_int wl = e - i;
        /* previous non-space output character */
        o1p_int p = o->n;
        while (p > 0 && o->b[p - 1] == ' ') p--;
        char prev = p > 0 ? o->b[p - 1] : '\0';
        if (name_is(w, wl, "and") || name_is(w, wl, "or")) {
            if (prev != '\0' && prev != ',') put(o, ',');
            i = e - 1;
            continue;
        }
        if (name_is(w, wl, "million") || name_is(w, wl, "billion") || name_is(w, wl, "trillion") ||
            name_is(w, wl, "thousand")) {
            if (is_digit(prev)) {
                o->n = p;
                puts_(o, name_is(w, wl, "thousand") ? "\\cdot 10^{3}"
                         : name_is(w, wl, "million") ? "\\cdot 10^{6}"
                         : name_is(w, wl, "billion") ? "\\cdot 10^{9}"
                                                     : "\\cdot 10^{12}");
                i = e - 1;
                continue;
            }
        }
        if (prev != '\0' && prev != ',' && name_in(w, wl, UNIT_WORDS)) {
            o1p_int t = unit_tail(s, n, e);
            if (t >= 0) {
                o->n = p;
                i = t - 1;
                continue;
            }
        }
        putn(o, w, wl);
        i = e - 1;
    }
}

/* ---- pass D: thousands separators ------------------------------------------ */

/* At a digit run starting at s[i]: if it is 1-3 digits followed by groups of
 * (separator, exactly 3 digits), write the digits without separators and
 * return the index after the number; else return -1. Plain commas count only
 * outside brackets (so (12,102) stays a pair) and never before a space. */
static o1p_int thousands(const char *s, o1p_int n, o1p_int i, int depth0, sbuf *o) {
    o1p_int k = i;
    while (k < n && is_digit(s[k])) k++;
    if (k - i > 3) return -1;
    o1p_int groups = 0, m = k;
    char kind = 0;
    while (m < n) {
        char sep = s[m];
        int ok = sep == THOUSANDS_MARK || (sep == ',' && depth0) || sep == ' ';
        if (!ok || (kind && sep != kind)) break;
        if (m + 3 >= n) break; /* room for three digits s[m+1..m+3] */
        if (!(is_digit(s[m + 1]) && is_digit(s[m + 2]) && is_digit(s[m + 3]))) break;
        if (m + 4 < n && is_digit(s[m + 4])) break;
        kind = sep;
        groups++;
        m += 4;
    }
    if (groups == 0) return -1;
    for (o1p_int q = i; q < m; q++)
        if (is_digit(s[q])) put(o, s[q]);
    return m;
}

static void pass_thousands(const char *s, o1p_int n, sbuf *o) {
    int depth = 0;
    for (o1p_int i = 0; i < n; i++) {
        char c = s[i];
        if (c == '(' || c == '[' || c == '{') depth++;
        if ((c == ')' || c == ']' || c == '}') && depth > 0) depth--;
        if (is_digit(c) && (i == 0 || (!is_digit(s[i - 1]) && s[i - 1] != '.'))) {
            o1p_int e = thousands(s, n, i, depth == 0, o);
            if (e >= 0) {
                i = e - 1;
                continue;
            }
            /* copy the digit run as is */
            while (i < n && is_digit(s[i])) put(o, s[i++]);
            i--;
            continue;
        }
        put(o, c == THOUSANDS_MARK ? ',' : c);
    }
}

/* ---- pass E: spaces ------------------------------------------------------------ */

static void pass_spaces(const char *s, o1p_int n, sbuf *o) {
    for (o1p_int i = 0; i < n; i++) {
        char c = s[i];
        if (c != ' ') {
            put(o, c);
            continue;
        }
        while (i + 1 < n && s[i + 1] == ' ') i++;
        if (o->n == 0 || i + 1 >= n) continue;
        char prev = o->b[o->n - 1], next = s[i + 1];
        /* keep one space where dropping it would merge two tokens */
        int prev_cmd = 0;
        if (is_alpha(prev)) {
            o1p_int p = o->n - 1;
            while (p > 0 && is_alpha(o->b[p - 1])) p--;
            prev_cmd = p > 0 && o->b[p - 1] == '\\';
        }
        if ((prev_cmd && is_alpha(next)) || (is_digit(prev) && is_digit(next)) ||
            (is_alpha(prev) && is_alpha(next)))
            put(o, ' ');
    }
}

char *gr_normalize(grader_ctx *c, const char *s, o1p_int n, o1p_int *out_len) {
    o1p_int a = 0, b = n;
    unwrap(s, &a, &b);
    o1p_int m = b - a;
    sbuf x = {(char *)gr_alloc(c, (size_t)(4 * m + 16)), 0, 4 * m + 16};
    if (!x.b) return NULL;
    pass_commands(s + a, m, &x);
    sbuf y = {(char *)gr_alloc(c, (size_t)(x.n + 16)), 0, x.n + 16};
    if (!y.b) return NULL;
    pass_words(x.b, x.n, &y);
    sbuf z = {x.b, 0, x.cap}; /* x is free again */
    pass_thousands(y.b, y.n, &z);
    sbuf w = {y.b, 0, y.cap};
    pass_spaces(z.b, z.n, &w);
    a = 0;
    b = w.n;
    unwrap(w.b, &a, &b);
    memmove(w.b, w.b + a, (size_t)(b - a));
    w.b[b - a] = '\0';
    *out_len = b - a;
    return w.b;
}
