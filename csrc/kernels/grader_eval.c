/* grader_eval.c: tokenizer, expression parser and evaluator of the grader.
 * The parser reads LaTeX as LaTeX (\frac12, \sqrt3, \sin^2 x, mixed numbers
 * 3\frac12, implicit multiplication; x^10 is x^{10} as in plain text) into a small tree whose
 * sums and products are n-ary, so its depth is the nesting depth of the
 * input, which GR_MAX_DEPTH bounds. The evaluator computes exact complex
 * rationals (big integers, no overflow) while it can and switches to double
 * precision complex numbers for irrational steps (sqrt 2, pi, sin). */
#include <complex.h>
#include <math.h>
#include <string.h>

#include "grader_internal.h"

#define GR_PI 3.14159265358979323846
#define GR_E 2.71828182845904523536

static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* ---- command table -------------------------------------------------------- */

enum {
    F_SIN = 1, F_COS, F_TAN, F_COT, F_SEC, F_CSC, F_ASIN, F_ACOS, F_ATAN, F_SINH, F_COSH, F_TANH,
    F_EXP, F_LN, F_LOG, F_ACOT
};

typedef struct {
    const char *name;
    int id, fn;
} cmd_def;

static const cmd_def CMDS[] = {
    {"frac", GR_C_FRAC, 0}, {"sqrt", GR_C_SQRT, 0}, {"pi", GR_C_PI, 0}, {"infty", GR_C_INFTY, 0},
    {"cdot", GR_C_CDOT, 0}, {"div", GR_C_DIV, 0}, {"pm", GR_C_PM, 0}, {"mp", GR_C_MP, 0},
    {"le", GR_C_LE, 0}, {"ge", GR_C_GE, 0}, {"ne", GR_C_NE, 0}, {"approx", GR_C_APPROX, 0},
    {"in", GR_C_IN, 0}, {"cup", GR_C_CUP, 0}, {"binom", GR_C_BINOM, 0}, {"lfloor", GR_C_LFLOOR, 0},
    {"rfloor", GR_C_RFLOOR, 0}, {"lceil", GR_C_LCEIL, 0}, {"rceil", GR_C_RCEIL, 0},
    {"equiv", GR_C_EQUIV, 0}, {"to", GR_C_TO, 0}, {"rightarrow", GR_C_TO, 0}, {"cap", GR_C_CAP, 0},
    {"dots", GR_C_DOTS, 0}, {"emptyset", GR_C_EMPTYSET, 0}, {"varnothing", GR_C_EMPTYSET, 0},
    {"sin", GR_C_FUNC, F_SIN}, {"cos", GR_C_FUNC, F_COS}, {"tan", GR_C_FUNC, F_TAN},
    {"cot", GR_C_FUNC, F_COT}, {"sec", GR_C_FUNC, F_SEC}, {"csc", GR_C_FUNC, F_CSC},
    {"arcsin", GR_C_FUNC, F_ASIN}, {"arccos", GR_C_FUNC, F_ACOS}, {"arctan", GR_C_FUNC, F_ATAN},
    {"arccot", GR_C_FUNC, F_ACOT}, {"sinh", GR_C_FUNC, F_SINH}, {"cosh", GR_C_FUNC, F_COSH},
    {"tanh", GR_C_FUNC, F_TANH}, {"exp", GR_C_FUNC, F_EXP}, {"ln", GR_C_LOG, F_LN},
    {"log", GR_C_LOG, F_LOG}, {"lg", GR_C_LOG, F_LOG}, {NULL, 0, 0}};

static const char *const GREEK[] = {
    "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta",
    "vartheta", "iota", "kappa", "lambda", "mu", "nu", "xi", "rho", "varrho", "sigma", "tau",
    "upsilon", "phi", "varphi", "chi", "psi", "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi",
    "Sigma", "Phi", "Psi", "Omega", "ell", NULL};

/* Plain words read as commands ("sqrt(2)", "pi", "sin x"). */
static const char *const WORDS[] = {"sqrt", "pi", "infty", "inf", "sin", "cos", "tan", "cot", "sec",
                                    "csc", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
                                    "exp", "ln", "log", NULL};

static const cmd_def *find_cmd(const char *s, o1p_int len) {
    for (int k = 0; CMDS[k].name; k++)
        if ((o1p_int)strlen(CMDS[k].name) == len && memcmp(CMDS[k].name, s, (size_t)len) == 0)
            return &CMDS[k];
    return NULL;
}

static int in_list(const char *s, o1p_int len, const char *const *l) {
    for (int k = 0; l[k]; k++)
        if ((o1p_int)strlen(l[k]) == len && memcmp(l[k], s, (size_t)len) == 0) return 1;
    return 0;
}

/* ---- tokenizer -------------------------------------------------------------- */

/* Subscript at s[i] == '_': single character or {group}; sets (*sp, *sl) to
 * the content and returns the index after it, or -1. */
static o1p_int subscript(const char *s, o1p_int n, o1p_int i, o1p_int *sp, o1p_int *sl) {
    o1p_int k = i + 1;
    if (k >= n) return -1;
    if (s[k] == '{') {
        o1p_int depth = 0;
        for (o1p_int m = k; m < n; m++) {
            if (s[m] == '\\') {
                m++;
                continue;
            }
            if (s[m] == '{') depth++;
            if (s[m] == '}' && --depth == 0) {
                *sp = k + 1;
                *sl = m - k - 1;
                return m + 1;
            }
        }
        return -1;
    }
    if (is_alpha(s[k]) || is_digit(s[k])) {
        *sp = k;
        *sl = 1;
        return k + 1;
    }
    return -1;
}

int gr_tokenize(grader_ctx *c, gr_side *sd) {
    const char *s = sd->s;
    o1p_int n = sd->n;
    sd->tok = (gr_tok *)gr_alloc(c, sizeof(gr_tok) * (size_t)(n + 2));
    if (!sd->tok) return 0;
    int nt = 0, space = 0;
    o1p_int i = 0;
    while (i < n) {
        char ch = s[i];
        if (ch == ' ') {
            space = 1;
            i++;
            continue;
        }
        gr_tok t;
        memset(&t, 0, sizeof t);
        t.space_before = space;
        space = 0;
        t.pos = i;
        if (is_digit(ch) || (ch == '.' && i + 1 < n && is_digit(s[i + 1]))) {
            o1p_int j = i;
            while (j < n && is_digit(s[j])) j++;
            int point = 0;
            if (j < n && s[j] == '.' && j + 1 < n && is_digit(s[j + 1])) {
                point = 1;
                j++;
                while (j < n && is_digit(s[j])) j++;
            }
            /* scientific notation 1.5e-3 (no spaces) */
            if (j + 1 < n && (s[j] == 'e' || s[j] == 'E') &&
                (is_digit(s[j + 1]) || ((s[j + 1] == '-' || s[j + 1] == '+') && j + 2 < n && is_digit(s[j + 2])))) {
                j += 2;
                while (j < n && is_digit(s[j])) j++;
                point = 1;
            }
            t.type = T_NUM;
            t.len = j - i;
            if (!point && j < n && s[j] == '_') {
                o1p_int sp = 0, sl = 0, e = subscript(s, n, j, &sp, &sl);
                int digits = e > 0 && sl > 0;
                for (o1p_int m = sp; digits && m < sp + sl; m++) digits = is_digit(s[m]);
                if (digits) {
                    t.type = T_BASENUM;
                    t.spos = sp;
                    t.slen = sl;
                    j = e;
                }
            }
            i = j;
        } else if (is_alpha(ch)) {
            o1p_int j = i;
            while (j < n && is_alpha(s[j])) j++;
            if (in_list(s + i, j - i, WORDS)) {
                const cmd_def *d = find_cmd(s + i, j - i);
                t.type = T_CMD;
                t.sub = d ? d->id : (j - i == 3 ? GR_C_INFTY : GR_C_OTHER); /* "inf" */
                if (j - i == 2 && s[i] == 'p') t.sub = GR_C_PI;
                t.len = j - i;
                i = j;
            } else {
                t.type = T_IDENT;
                t.len = 1;
                i++;
                if (i < n && s[i] == '_') {
                    o1p_int sp, sl, e = subscript(s, n, i, &sp, &sl);
                    if (e > 0) {
                        t.spos = sp;
                        t.slen = sl;
                        i = e;
                    }
                }
            }
        } else if (ch == '\\') {
            o1p_int j = i + 1;
            if (j < n && is_alpha(s[j])) {
                while (j < n && is_alpha(s[j])) j++;
                const char *nm = s + i + 1;
                o1p_int nl = j - i - 1;
                if ((nl == 5 && memcmp(nm, "begin", 5) == 0) || (nl == 3 && memcmp(nm, "end", 3) == 0)) {
                    o1p_int sp, sl;
                    o1p_int k = j;
                    while (k < n && s[k] == ' ') k++;
                    o1p_int e = (k < n && s[k] == '{') ? subscript(s, n, k - 1, &sp, &sl) : -1;
                    if (e < 0) {
                        t.type = T_BAD;
                        t.len = j - i;
                        i = j;
                    } else {
                        t.type = nl == 5 ? T_BEGIN : T_ENDENV;
                        t.spos = sp;
                        t.slen = sl;
                        i = e;
                        /* \begin{array}{cc}: drop the column specification */
                        if (nl == 5 && sl == 5 && memcmp(s + sp, "array", 5) == 0) {
                            o1p_int k2 = i;
                            while (k2 < n && s[k2] == ' ') k2++;
                            if (k2 < n && s[k2] == '{') {
                                o1p_int e2 = subscript(s, n, k2 - 1, &sp, &sl);
                                if (e2 > 0) i = e2;
                            }
                        }
                    }
                    t.len = i - t.pos;
                } else if (in_list(nm, nl, GREEK)) {
                    t.type = T_IDENT;
                    t.len = j - i;
                    i = j;
                    if (i < n && s[i] == '_') {
                        o1p_int sp, sl, e = subscript(s, n, i, &sp, &sl);
                        if (e > 0) {
                            t.spos = sp;
                            t.slen = sl;
                            i = e;
                        }
                    }
                } else {
                    const cmd_def *d = find_cmd(nm, nl);
                    t.type = T_CMD;
                    t.sub = d ? d->id : GR_C_OTHER;
                    t.len = j - i;
                    i = j;
                }
            } else if (j < n && s[j] == '\\') {
                t.type = T_ROWSEP;
                t.len = 2;
                i = j + 1;
            } else if (j < n && (s[j] == '{' || s[j] == '}')) {
                t.type = s[j] == '{' ? T_LSET : T_RSET;
                t.len = 2;
                i = j + 1;
            } else {
                t.type = T_BAD;
                t.len = j < n ? 2 : 1;
                i = j < n ? j + 1 : j;
            }
        } else if ((unsigned char)ch < 0x80 && ch > 0x20 && ch != 0x7f) {
            t.type = T_OP;
            t.sub = ch;
            t.len = 1;
            i++;
        } else {
            t.type = T_BAD;
            t.len = 1;
            i++;
        }
        t.end = i;
        sd->tok[nt++] = t;
    }
    sd->ntok = nt;
    sd->cap = 4 * nt + 64;
    sd->nnode = 0;
    sd->node = (gr_node *)gr_alloc(c, sizeof(gr_node) * (size_t)sd->cap);
    return sd->node != NULL;
}

/* ---- parser ---------------------------------------------------------------- */

typedef struct {
    grader_ctx *c;
    gr_side *sd;
    gr_vars *vars;
    int i, hi;   /* current token, end of range */
    o1p_int sub; /* digits of the current T_NUM already consumed (\frac12) */
    int depth, err;
} parser;

static const gr_tok END_TOK = {T_END, 0, 0, 0, 0, 0, 0, 0};

static const gr_tok *peek(parser *p) { return p->i < p->hi ? &p->sd->tok[p->i] : &END_TOK; }
static void advance(parser *p) {
    p->i++;
    p->sub = 0;
}
static int is_op(const gr_tok *t, char ch) { return t->type == T_OP && t->sub == ch; }
static int is_cmd(const gr_tok *t, int id) { return t->type == T_CMD && t->sub == id; }

static int new_node(parser *p, int op) {
    gr_side *sd = p->sd;
    if (sd->nnode >= sd->cap) {
        p->err = 1;
        return -1;
    }
    int k = sd->nnode++;
    gr_node *nd = &sd->node[k];
    memset(nd, 0, sizeof *nd);
    nd->op = (uint8_t)op;
    nd->a = nd->b = nd->next = -1;
    return k;
}

static int node1(parser *p, int op, int a) {
    int k = new_node(p, op);
    if (k >= 0) p->sd->node[k].a = a;
    return k;
}
static int node2(parser *p, int op, int a, int b) {
    int k = new_node(p, op);
    if (k >= 0) {
        p->sd->node[k].a = a;
        p->sd->node[k].b = b;
    }
    return k;
}

/* n-ary lists: append child `x` (negated: subtracted / divided) to the
 * SUM/PROD node `list`; *tail is the last child so far (-1: none). */
static void append(parser *p, int list, int x, int negate, int *tail) {
    if (x < 0 || list < 0) {
        p->err = 1;
        return;
    }
    gr_node *nd = p->sd->node;
    if (negate) nd[x].flags |= NF_NEGATE;
    if (*tail < 0) {
        nd[list].a = x;
    } else {
        nd[*tail].next = x;
    }
    *tail = x;
}

static int parse_sum(parser *p);
static int parse_unary(parser *p);
static int parse_power(parser *p);
static int parse_atom(parser *p);

static int enter(parser *p) {
    if (++p->depth > GR_MAX_DEPTH) {
        p->err = 1;
        return 0;
    }
    return 1;
}

static int intern_var(parser *p, const gr_tok *t) {
    gr_vars *v = p->vars;
    const char *nm = p->sd->s + t->pos, *sb = p->sd->s + t->spos;
    o1p_int nl = t->len, sl = t->slen; /* len: the name; the subscript apart */
    for (int k = 0; k < v->n; k++) {
        if (v->len[k] == nl && v->slen[k] == sl && memcmp(v->name[k], nm, (size_t)nl) == 0 &&
            memcmp(v->sub[k], sb, (size_t)sl) == 0)
            return k;
    }
    if (v->n >= GR_MAX_VARS) {
        p->err = 1;
        return -1;
    }
    v->name[v->n] = nm;
    v->len[v->n] = nl;
    v->sub[v->n] = sb;
    v->slen[v->n] = sl;
    return v->n++;
}

/* Literal node for the rest of the current number token. */
static int num_node(parser *p, o1p_int ndigits) {
    const gr_tok *t = peek(p);
    int k = new_node(p, N_NUM);
    if (k < 0) return -1;
    gr_node *nd = &p->sd->node[k];
    nd->pos = t->pos + p->sub;
    nd->len = ndigits > 0 ? ndigits : t->len - p->sub;
    for (o1p_int m = 0; m < nd->len; m++) {
        char ch = p->sd->s[nd->pos + m];
        if (ch == '.' || ch == 'e' || ch == 'E') nd->flags |= NF_DECIMAL;
    }
    if (ndigits > 0 && p->sub + ndigits < t->len) {
        p->sub += ndigits;
    } else {
        advance(p);
    }
    return k;
}

static int expect_op(parser *p, char ch) {
    if (!is_op(peek(p), ch)) {
        p->err = 1;
        return 0;
    }
    advance(p);
    return 1;
}

/* A LaTeX macro argument: {group}, one digit, one letter, one command atom,
 * or (for plain text like 2^(1/2) and x^-1) a parenthesised group or a sign. */
static int parse_arg(parser *p, int single_digit) {
    if (!enter(p)) return -1;
    const gr_tok *t = peek(p);
    int r = -1;
    if (is_op(t, '{')) {
        advance(p);
        r = parse_sum(p);
        if (!expect_op(p, '}')) r = -1;
        if (r >= 0) p->sd->node[r].flags |= NF_PAREN;
    } else if (t->type == T_NUM) {
        r = num_node(p, single_digit ? 1 : 0);
    } else if (t->type == T_IDENT || t->type == T_CMD || is_op(t, '(') || t->type == T_BASENUM) {
        r = parse_atom(p);
    } else if (is_op(t, '-')) {
        advance(p);
        r = node1(p, N_NEG, parse_arg(p, single_digit));
    } else if (is_op(t, '+')) {
        advance(p);
        r = parse_arg(p, single_digit);
    } else {
        p->err = 1;
    }
    p->depth--;
    return p->err ? -1 : r;
}

/* Can token t start a factor of an implicit product? */
static int starts_factor(const gr_tok *t) {
    switch (t->type) {
    case T_NUM: case T_BASENUM: case T_IDENT:
        return 1;
    case T_CMD:
        return t->sub == GR_C_FRAC || t->sub == GR_C_SQRT || t->sub == GR_C_PI ||
               t->sub == GR_C_INFTY || t->sub == GR_C_BINOM || t->sub == GR_C_FUNC ||
               t->sub == GR_C_LOG || t->sub == GR_C_LFLOOR || t->sub == GR_C_LCEIL;
    case T_OP:
        return t->sub == '(' || t->sub == '{';
    default:
        return 0;
    }
}

static int is_int_literal(const gr_side *sd, int k) {
    if (k < 0) return 0;
    const gr_node *nd = &sd->node[k];
    return nd->op == N_NUM && !(nd->flags & NF_DECIMAL);
}

/* \frac{int}{int}: the fraction part of a mixed number */
static int is_int_frac(const gr_side *sd, int k) {
    if (k < 0) return 0;
    const gr_node *nd = &sd->node[k];
    if (nd->op != N_PROD || !(nd->flags & NF_FRAC)) return 0;
    int a = nd->a, b = a >= 0 ? sd->node[a].next : -1;
    return is_int_literal(sd, a) && is_int_literal(sd, b);
}

/* Function argument: (..), {..}, or an implicit product of simple factors
 * ("\sin 2x" is sin(2x), "\sin x \cos y" is sin(x) cos(y)). */
static int parse_func_arg(parser *p) {
    const gr_tok *t = peek(p);
    if (is_op(t, '(') || is_op(t, '{')) return parse_atom(p);
    int f = parse_power(p);
    if (f < 0) return -1;
    int list = -1, tail = -1;
    for (;;) {
        t = peek(p);
        if (!(t->type == T_NUM || t->type == T_IDENT || is_cmd(t, GR_C_PI))) break;
        if (list < 0) {
            list = new_node(p, N_PROD);
            append(p, list, f, 0, &tail);
        }
        append(p, list, parse_power(p), 0, &tail);
        if (p->err) return -1;
    }
    return list >= 0 ? list : f;
}

static int parse_atom(parser *p) {
    if (!enter(p)) return -1;
    const gr_tok *t = peek(p);
    int r = -1;
    switch (t->type) {
    case T_NUM:
        r = num_node(p, 0);
        break;
    case T_BASENUM: {
        r = new_node(p, N_BASENUM);
        if (r >= 0) {
            gr_node *nd = &p->sd->node[r];
            nd->pos = t->pos;
            nd->len = 0;
            while (nd->len < t->len && is_digit(p->sd->s[t->pos + nd->len])) nd->len++;
            nd->bpos = t->spos;
            nd->blen = t->slen;
        }
        advance(p);
        break;
    }
    case T_IDENT: {
        const char ch = p->sd->s[t->pos];
        if (t->len == 1 && t->slen == 0 && (ch == 'i' || ch == 'e')) {
            r = new_node(p, ch == 'i' ? N_I : N_E);
        } else {
            int v = intern_var(p, t);
            r = new_node(p, N_VAR);
            if (r >= 0) p->sd->node[r].a = v;
        }
        advance(p);
        break;
    }
    case T_CMD: {
        int id = t->sub;
        int fn = 0;
        if (id == GR_C_FUNC || id == GR_C_LOG) {
            const cmd_def *d = find_cmd(p->sd->s + t->pos + (p->sd->s[t->pos] == '\\'),
                                        t->len - (p->sd->s[t->pos] == '\\'));
            fn = d ? d->fn : F_LOG;
        }
        advance(p);
        if (id == GR_C_FRAC) {
            int a = parse_arg(p, 1), b = parse_arg(p, 1);
            r = new_node(p, N_PROD);
            int tail = -1;
            append(p, r, a, 0, &tail);
            append(p, r, b, 1, &tail);
            if (r >= 0) p->sd->node[r].flags |= NF_FRAC;
        } else if (id == GR_C_SQRT) {
            if (is_op(peek(p), '[')) {
                advance(p);
                int idx = parse_sum(p);
                expect_op(p, ']');
                r = node2(p, N_ROOT, parse_arg(p, 0), idx);
            } else {
                r = node1(p, N_SQRT, parse_arg(p, 0));
            }
        } else if (id == GR_C_PI) {
            r = new_node(p, N_PI);
        } else if (id == GR_C_INFTY) {
            r = new_node(p, N_INF);
        } else if (id == GR_C_BINOM) {
            int a = parse_arg(p, 1);
            r = node2(p, N_BINOM, a, parse_arg(p, 1));
        } else if (id == GR_C_LFLOOR || id == GR_C_LCEIL) {
            int a = parse_sum(p);
            if (!is_cmd(peek(p), id == GR_C_LFLOOR ? GR_C_RFLOOR : GR_C_RCEIL)) {
                p->err = 1;
            } else {
                advance(p);
            }
            r = node1(p, id == GR_C_LFLOOR ? N_FLOOR : N_CEIL, a);
        } else if (id == GR_C_FUNC || id == GR_C_LOG) {
            int power = -1, base = -1;
            for (int k = 0; k < 2; k++) {
                if (is_op(peek(p), '^') && power < 0) {
                    advance(p);
                    power = parse_arg(p, 0);
                } else if (is_op(peek(p), '_') && id == GR_C_LOG && base < 0) {
                    advance(p);
                    base = parse_arg(p, 0);
                }
            }
            int arg = parse_func_arg(p);
            if (id == GR_C_LOG) {
                r = node2(p, N_LOG, arg, base);
                if (r >= 0) p->sd->node[r].fn = (int16_t)fn;
            } else {
                r = node1(p, N_FUNC, arg);
                if (r >= 0) p->sd->node[r].fn = (int16_t)fn;
            }
            if (power >= 0) r = node2(p, N_POW, r, power);
        } else {
            p->err = 1; /* a command we cannot evaluate */
        }
        break;
    }
    case T_OP: {
        char ch = (char)t->sub;
        if (ch == '(' || ch == '[' || ch == '{') {
            advance(p);
            r = parse_sum(p);
            expect_op(p, ch == '(' ? ')' : ch == '[' ? ']' : '}');
            if (r >= 0) p->sd->node[r].flags |= NF_PAREN;
        } else if (ch == '|') {
            advance(p);
            int a = parse_sum(p);
            expect_op(p, '|');
            r = node1(p, N_ABS, a);
        } else {
            p->err = 1;
        }
        break;
    }
    default:
        p->err = 1;
    }
    p->depth--;
    return p->err ? -1 : r;
}

static int parse_power(parser *p) {
    if (!enter(p)) return -1;
    int b = parse_atom(p);
    for (;;) {
        const gr_tok *t = peek(p);
        if (is_op(t, '!')) {
            advance(p);
            b = node1(p, N_FACT, b);
        } else if (is_op(t, '^')) {
            advance(p);
            int e = parse_arg(p, 0);
            b = node2(p, N_POW, b, e);
        } else {
            break;
        }
        if (p->err) break;
    }
    p->depth--;
    return p->err ? -1 : b;
}

static int parse_unary(parser *p) {
    if (!enter(p)) return -1;
    const gr_tok *t = peek(p);
    int r;
    if (is_op(t, '-')) {
        advance(p);
        r = node1(p, N_NEG, parse_unary(p));
    } else if (is_op(t, '+')) {
        advance(p);
        r = parse_unary(p);
    } else if (is_cmd(t, GR_C_PM) || is_cmd(t, GR_C_MP)) {
        int mp = t->sub == GR_C_MP;
        advance(p);
        int a = parse_unary(p);
        r = node2(p, N_PM, -1, mp ? node1(p, N_NEG, a) : a);
    } else {
        r = parse_power(p);
    }
    p->depth--;
    return p->err ? -1 : r;
}

static int parse_term(parser *p) {
    if (!enter(p)) return -1;
    int f = parse_unary(p);
    int list = -1, tail = -1, nfac = 1;
    for (;;) {
        const gr_tok *t = peek(p);
        int g, div = 0;
        if (is_op(t, '*') || is_cmd(t, GR_C_CDOT)) {
            advance(p);
            g = parse_unary(p);
        } else if (is_op(t, '/') || is_cmd(t, GR_C_DIV)) {
            advance(p);
            g = parse_unary(p);
            div = 1;
        } else if (starts_factor(t)) {
            /* "2 3" is not a product: two numbers side by side are an error */
            if (t->type == T_NUM && p->sub == 0 && list < 0 && is_int_literal(p->sd, f)) {
                p->err = 1;
                break;
            }
            g = parse_power(p);
            /* mixed number 3\frac12 (= 3 + 1/2), also -3\frac12 */
            if (nfac == 1 && g >= 0 && is_int_frac(p->sd, g)) {
                gr_node *nd = p->sd->node;
                int inner = (f >= 0 && nd[f].op == N_NEG) ? nd[f].a : f;
                if (is_int_literal(p->sd, inner) && !(nd[inner].flags & NF_PAREN)) {
                    int sum = new_node(p, N_SUM), st = -1;
                    append(p, sum, inner, 0, &st);
                    append(p, sum, g, 0, &st);
                    if (p->err) break;
                    if (f != inner) {
                        p->sd->node[f].a = sum;
                    } else {
                        f = sum;
                    }
                    nfac = 2;
                    continue;
                }
            }
        } else {
            break;
        }
        if (p->err || g < 0) {
            p->err = 1;
            break;
        }
        if (list < 0) {
            list = new_node(p, N_PROD);
            append(p, list, f, 0, &tail);
        }
        append(p, list, g, div, &tail);
        nfac++;
    }
    p->depth--;
    return p->err ? -1 : (list >= 0 ? list : f);
}

static int parse_sum(parser *p) {
    if (!enter(p)) return -1;
    int first = parse_term(p);
    int list = -1, tail = -1;
    for (;;) {
        const gr_tok *t = peek(p);
        if (is_op(t, '+') || is_op(t, '-')) {
            int neg = t->sub == '-';
            advance(p);
            int g = parse_term(p);
            if (list < 0) {
                list = new_node(p, N_SUM);
                append(p, list, first, 0, &tail);
            }
            append(p, list, g, neg, &tail);
        } else if (is_cmd(t, GR_C_PM) || is_cmd(t, GR_C_MP)) {
            int mp = t->sub == GR_C_MP;
            advance(p);
            int g = parse_term(p);
            int left = list >= 0 ? list : first;
            int pm = node2(p, N_PM, left, mp ? node1(p, N_NEG, g) : g);
            list = new_node(p, N_SUM);
            tail = -1;
            append(p, list, pm, 0, &tail);
        } else {
            break;
        }
        if (p->err) break;
    }
    p->depth--;
    return p->err ? -1 : (list >= 0 ? list : first);
}

int gr_parse_expr(grader_ctx *c, gr_side *sd, gr_vars *vars, int lo, int hi) {
    if (lo >= hi) return -1;
    parser p = {c, sd, vars, lo, hi, 0, 0, 0};
    int r = parse_sum(&p);
    if (p.err || p.i != hi || p.sub != 0) return -1;
    return r;
}

/* ---- values ----------------------------------------------------------------- */

static gr_val bad(void) {
    gr_val v;
    memset(&v, 0, sizeof v);
    v.kind = V_BAD;
    return v;
}

static gr_val exact(grader_ctx *c, gr_rat re, gr_rat im, unsigned flags) {
    gr_val v;
    if (c->err) return bad();
    v.kind = V_EXACT;
    v.flags = flags;
    v.re = re;
    v.im = im;
    v.fre = gr_rat_to_double(re);
    v.fim = gr_rat_is_zero(im) ? 0.0 : gr_rat_to_double(im);
    return v;
}

static gr_val flt(double complex z, unsigned flags) {
    gr_val v;
    memset(&v, 0, sizeof v);
    double re = creal(z), im = cimag(z);
    if (isnan(re) || isnan(im)) return bad();
    if ((isinf(re) || isinf(im)) && !(flags & VF_INF)) return bad(); /* overflow */
    v.kind = V_FLOAT;
    v.flags = flags;
    v.fre = re;
    v.fim = im;
    return v;
}

static double complex zval(gr_val v) { return v.fre + v.fim * I; }
static int is_real(gr_val v) { return v.kind == V_EXACT ? gr_rat_is_zero(v.im) : v.fim == 0.0; }

static gr_val v_add(grader_ctx *c, gr_val a, gr_val b, int negate_b) {
    unsigned fl = a.flags | b.flags;
    if (a.kind == V_BAD || b.kind == V_BAD) return bad();
    if (a.kind == V_EXACT && b.kind == V_EXACT) {
        if (negate_b) {
            b.re = gr_rat_neg(b.re);
            b.im = gr_rat_neg(b.im);
        }
        return exact(c, gr_rat_add(c, a.re, b.re), gr_rat_add(c, a.im, b.im), fl);
    }
    double complex z = negate_b ? zval(a) - zval(b) : zval(a) + zval(b);
    return flt(z, fl);
}

static gr_val v_mul(grader_ctx *c, gr_val a, gr_val b) {
    unsigned fl = a.flags | b.flags;
    if (a.kind == V_BAD || b.kind == V_BAD) return bad();
    if (a.kind == V_EXACT && b.kind == V_EXACT) {
        if (gr_rat_is_zero(a.im) && gr_rat_is_zero(b.im))
            return exact(c, gr_rat_mul(c, a.re, b.re), a.im, fl);
        gr_rat re = gr_rat_sub(c, gr_rat_mul(c, a.re, b.re), gr_rat_mul(c, a.im, b.im));
        gr_rat im = gr_rat_add(c, gr_rat_mul(c, a.re, b.im), gr_rat_mul(c, a.im, b.re));
        return exact(c, re, im, fl);
    }
    /* 0 * inf stays bad; anything else in floating point */
    return flt(zval(a) * zval(b), fl);
}

static gr_val v_div(grader_ctx *c, gr_val a, gr_val b) {
    unsigned fl = a.flags | b.flags;
    if (a.kind == V_BAD || b.kind == V_BAD) return bad();
    if (b.kind == V_EXACT) {
        if (gr_rat_is_zero(b.re) && gr_rat_is_zero(b.im)) return bad();
        if (a.kind == V_EXACT) {
            if (gr_rat_is_zero(a.im) && gr_rat_is_zero(b.im))
                return exact(c, gr_rat_div(c, a.re, b.re), a.im, fl);
            gr_rat den = gr_rat_add(c, gr_rat_mul(c, b.re, b.re), gr_rat_mul(c, b.im, b.im));
            gr_rat re = gr_rat_add(c, gr_rat_mul(c, a.re, b.re), gr_rat_mul(c, a.im, b.im));
            gr_rat im = gr_rat_sub(c, gr_rat_mul(c, a.im, b.re), gr_rat_mul(c, a.re, b.im));
            return exact(c, gr_rat_div(c, re, den), gr_rat_div(c, im, den), fl);
        }
    }
    double complex zb = zval(b);
    if (zb == 0.0) return bad();
    if (isinf(creal(zb)) || isinf(cimag(zb))) {
        if (a.flags & VF_INF) return bad();
        return flt(0.0, fl & ~(unsigned)VF_INF);
    }
    return flt(zval(a) / zb, fl);
}

static gr_val v_neg(grader_ctx *c, gr_val a) {
    if (a.kind == V_EXACT) return exact(c, gr_rat_neg(a.re), gr_rat_neg(a.im), a.flags);
    if (a.kind == V_FLOAT) return flt(-zval(a), a.flags);
    return a;
}

static gr_val v_int(grader_ctx *c, int64_t k) {
    return exact(c, gr_rat_from_i64(c, k), gr_rat_from_i64(c, 0), 0);
}

/* Exact real q-th root of an exact real rational (q small), if it exists:
 * negative values have one for odd q. */
static int exact_root(grader_ctx *c, gr_rat x, unsigned q, gr_rat *out) {
    int neg = x.num.neg;
    if (neg && q % 2 == 0) return 0;
    gr_big num = x.num, rn, rd;
    num.neg = 0;
    if (!gr_big_iroot(c, num, q, &rn) || !gr_big_iroot(c, x.den, q, &rd)) return 0;
    if (neg) rn = gr_big_neg(rn);
    out->num = rn;
    out->den = rd;
    return 1;
}

static gr_val v_powi(grader_ctx *c, gr_val a, int64_t k) {
    /* exact integer power by squaring (complex too); |k| is bounded by caller */
    int neg = k < 0;
    uint64_t e = neg ? (uint64_t)(-k) : (uint64_t)k;
    if (gr_rat_is_zero(a.im)) {
        gr_rat r = {gr_big_pow(c, a.re.num, e), gr_big_pow(c, a.re.den, e)};
        if (c->err) return bad();
        gr_val v = exact(c, r, a.im, a.flags);
        return neg ? v_div(c, v_int(c, 1), v) : v;
    }
    gr_val r = v_int(c, 1), base = a;
    r.flags = a.flags;
    while (e && !c->err) {
        if (e & 1) r = v_mul(c, r, base);
        e >>= 1;
        if (e) base = v_mul(c, base, base);
    }
    if (c->err) return bad();
    return neg ? v_div(c, v_int(c, 1), r) : r;
}

static gr_val v_pow(grader_ctx *c, gr_val a, gr_val b) {
    unsigned fl = a.flags | b.flags;
    if (a.kind == V_BAD || b.kind == V_BAD) return bad();
    if (b.kind == V_EXACT && gr_rat_is_zero(b.im) && a.kind == V_EXACT) {
        int zero_base = gr_rat_is_zero(a.re) && gr_rat_is_zero(a.im);
        if (gr_rat_is_int(b.re)) {
            int64_t k;
            if (!gr_big_fits_i64(b.re.num, &k)) return bad();
            if (zero_base && k < 0) return bad();
            int64_t limit = gr_rat_is_zero(a.im) ? 1000000 : 4096;
            if (k > limit || k < -limit) return bad();
            gr_val v = v_powi(c, a, k);
            v.flags |= fl;
            return v;
        }
        /* rational exponent p/q with small q: exact when the root is */
        int64_t pnum, q;
        if (gr_rat_is_zero(a.im) && gr_big_fits_i64(b.re.num, &pnum) && gr_big_fits_i64(b.re.den, &q) &&
            q <= 64 && pnum >= -4096 && pnum <= 4096) {
            gr_rat root;
            if (exact_root(c, a.re, (unsigned)q, &root)) {
                gr_val v = exact(c, root, a.im, fl);
                v = v_powi(c, v, pnum);
                v.flags |= fl;
                return v;
            }
            /* real odd root of a negative number stays real */
            if (a.re.num.neg && (q % 2) == 1) {
                double m = pow(-gr_rat_to_double(a.re), (double)pnum / (double)q);
                return flt((pnum % 2) ? -m : m, fl);
            }
        }
    }
    double complex za = zval(a), zb = zval(b);
    if (cimag(za) == 0.0 && cimag(zb) == 0.0 && creal(za) > 0.0) return flt(pow(creal(za), creal(zb)), fl);
    if (za == 0.0) {
        if (creal(zb) > 0.0) return flt(0.0, fl);
        return bad();
    }
    return flt(cpow(za, zb), fl);
}

static gr_val v_sqrt(grader_ctx *c, gr_val a) {
    if (a.kind == V_BAD) return a;
    if (a.kind == V_EXACT && gr_rat_is_zero(a.im)) {
        gr_rat r;
        if (!a.re.num.neg && exact_root(c, a.re, 2, &r)) return exact(c, r, a.im, a.flags);
        if (a.re.num.neg && exact_root(c, gr_rat_neg(a.re), 2, &r)) return exact(c, a.im, r, a.flags);
    }
    if (is_real(a) && a.fre >= 0.0) return flt(sqrt(a.fre), a.flags);
    return flt(csqrt(zval(a)), a.flags);
}

/* k-th root with the real branch for odd k and negative reals (\sqrt[3]{-8} = -2) */
static gr_val v_root(grader_ctx *c, gr_val a, gr_val k) {
    if (a.kind == V_BAD || k.kind != V_EXACT || !gr_rat_is_zero(k.im) || !gr_rat_is_int(k.re)) return bad();
    int64_t q;
    if (!gr_big_fits_i64(k.re.num, &q) || q < 1 || q > 64) return bad();
    gr_val e = exact(c, gr_rat_make(c, gr_big_from_i64(c, 1), gr_big_from_i64(c, q)), gr_rat_from_i64(c, 0), 0);
    return v_pow(c, a, e);
}

static gr_val v_func(grader_ctx *c, int fn, gr_val a) {
    (void)c;
    if (a.kind == V_BAD) return a;
    double complex z = zval(a);
    unsigned fl = a.flags;
    if (is_real(a)) {
        double x = a.fre, r;
        switch (fn) {
        case F_SIN: r = sin(x); break;
        case F_COS: r = cos(x); break;
        case F_TAN: r = tan(x); break;
        case F_COT: r = 1.0 / tan(x); break;
        case F_SEC: r = 1.0 / cos(x); break;
        case F_CSC: r = 1.0 / sin(x); break;
        case F_ASIN: if (x < -1 || x > 1) return flt(casin(z), fl); r = asin(x); break;
        case F_ACOS: if (x < -1 || x > 1) return flt(cacos(z), fl); r = acos(x); break;
        case F_ATAN: r = atan(x); break;
        case F_ACOT: r = atan(1.0 / x); break;
        case F_SINH: r = sinh(x); break;
        case F_COSH: r = cosh(x); break;
        case F_TANH: r = tanh(x); break;
        case F_EXP: r = exp(x); break;
        default: return bad();
        }
        if (!isfinite(r) || fabs(r) > 1e15) return bad(); /* at a pole */
        return flt(r, fl);
    }
    switch (fn) {
    case F_SIN: return flt(csin(z), fl);
    case F_COS: return flt(ccos(z), fl);
    case F_TAN: return flt(ctan(z), fl);
    case F_COT: return flt(1.0 / ctan(z), fl);
    case F_SEC: return flt(1.0 / ccos(z), fl);
    case F_CSC: return flt(1.0 / csin(z), fl);
    case F_ASIN: return flt(casin(z), fl);
    case F_ACOS: return flt(cacos(z), fl);
    case F_ATAN: return flt(catan(z), fl);
    case F_ACOT: return flt(catan(1.0 / z), fl);
    case F_SINH: return flt(csinh(z), fl);
    case F_COSH: return flt(ccosh(z), fl);
    case F_TANH: return flt(ctanh(z), fl);
    case F_EXP: return flt(cexp(z), fl);
    default: return bad();
    }
}

static gr_val v_log(gr_val a) {
    if (a.kind == V_BAD) return a;
    if (is_real(a) && a.fre > 0.0) return flt(log(a.fre), a.flags);
    if (zval(a) == 0.0) return bad();
    return flt(clog(zval(a)), a.flags);
}

static gr_val v_fact(grader_ctx *c, gr_val a) {
    if (a.kind == V_EXACT && gr_rat_is_zero(a.im) && gr_rat_is_int(a.re)) {
        int64_t k;
        if (!gr_big_fits_i64(a.re.num, &k) || k < 0 || k > 1000) return bad();
        gr_big r = gr_big_from_i64(c, 1);
        for (int64_t m = 2; m <= k && !c->err; m++) r = gr_big_mul(c, r, gr_big_from_i64(c, m));
        return exact(c, (gr_rat){r, gr_big_from_i64(c, 1)}, gr_rat_from_i64(c, 0), a.flags);
    }
    if (is_real(a) && a.kind != V_BAD && a.fre > -1.0) return flt(tgamma(a.fre + 1.0), a.flags);
    return bad();
}

static gr_val v_binom(grader_ctx *c, gr_val a, gr_val b) {
    int64_t n, k;
    if (a.kind != V_EXACT || b.kind != V_EXACT || !gr_rat_is_zero(a.im) || !gr_rat_is_zero(b.im) ||
        !gr_rat_is_int(a.re) || !gr_rat_is_int(b.re) || !gr_big_fits_i64(a.re.num, &n) ||
        !gr_big_fits_i64(b.re.num, &k) || n < 0 || n > 100000)
        return bad();
    if (k < 0 || k > n) return v_int(c, 0);
    if (k > n - k) k = n - k;
    if (k > 5000) return bad();
    gr_big r = gr_big_from_i64(c, 1), q, rem;
    for (int64_t m = 1; m <= k && !c->err; m++) {
        r = gr_big_mul(c, r, gr_big_from_i64(c, n - k + m));
        gr_big_divmod(c, r, gr_big_from_i64(c, m), &q, &rem);
        r = q;
    }
    return exact(c, (gr_rat){r, gr_big_from_i64(c, 1)}, gr_rat_from_i64(c, 0), a.flags | b.flags);
}

static gr_val v_round(grader_ctx *c, gr_val a, int ceil_) {
    if (a.kind == V_EXACT && gr_rat_is_zero(a.im)) {
        gr_big q, r;
        gr_big_divmod(c, a.re.num, a.re.den, &q, &r);
        /* truncation towards zero: adjust for floor of negatives / ceil of positives */
        if (r.n) {
            if (!ceil_ && a.re.num.neg) q = gr_big_sub(c, q, gr_big_from_i64(c, 1));
            if (ceil_ && !a.re.num.neg) q = gr_big_add(c, q, gr_big_from_i64(c, 1));
        }
        return exact(c, (gr_rat){q, gr_big_from_i64(c, 1)}, a.im, a.flags);
    }
    if (a.kind == V_FLOAT && a.fim == 0.0) return flt(ceil_ ? ceil(a.fre) : floor(a.fre), a.flags);
    return bad();
}

static gr_val v_basenum(grader_ctx *c, const gr_side *sd, const gr_node *nd) {
    int64_t base = 0;
    for (o1p_int m = 0; m < nd->blen; m++) {
        base = base * 10 + (sd->s[nd->bpos + m] - '0');
        if (base > 36) return bad();
    }
    if (base < 2) return bad();
    gr_big r = gr_big_from_i64(c, 0), bb = gr_big_from_i64(c, base);
    for (o1p_int m = 0; m < nd->len && !c->err; m++) {
        int dgt = sd->s[nd->pos + m] - '0';
        if (dgt >= base) return bad();
        r = gr_big_add(c, gr_big_mul(c, r, bb), gr_big_from_i64(c, dgt));
    }
    return exact(c, (gr_rat){r, gr_big_from_i64(c, 1)}, gr_rat_from_i64(c, 0), 0);
}

gr_val gr_eval(grader_ctx *c, const gr_side *sd, int root, const gr_rat *point, int pm) {
    if (root < 0 || c->err) return bad();
    const gr_node *nd = &sd->node[root];
    switch (nd->op) {
    case N_NUM: {
        gr_rat r;
        if (!gr_rat_from_decimal(c, sd->s + nd->pos, nd->len, &r)) return bad();
        return exact(c, r, gr_rat_from_i64(c, 0), (nd->flags & NF_DECIMAL) ? VF_DECIMAL : 0);
    }
    case N_BASENUM:
        return v_basenum(c, sd, nd);
    case N_VAR:
        if (!point) return bad();
        return exact(c, point[nd->a], gr_rat_from_i64(c, 0), 0);
    case N_PI:
        return flt(GR_PI, 0);
    case N_E:
        return flt(GR_E, 0);
    case N_I:
        return exact(c, gr_rat_from_i64(c, 0), gr_rat_from_i64(c, 1), 0);
    case N_INF:
        return flt(INFINITY, VF_INF);
    case N_SUM: {
        gr_val acc = v_int(c, 0);
        for (int k = nd->a; k >= 0; k = sd->node[k].next) {
            acc = v_add(c, acc, gr_eval(c, sd, k, point, pm), sd->node[k].flags & NF_NEGATE);
            if (acc.kind == V_BAD) return acc;
        }
        return acc;
    }
    case N_PROD: {
        gr_val acc = v_int(c, 1);
        for (int k = nd->a; k >= 0; k = sd->node[k].next) {
            gr_val x = gr_eval(c, sd, k, point, pm);
            acc = (sd->node[k].flags & NF_NEGATE) ? v_div(c, acc, x) : v_mul(c, acc, x);
            if (acc.kind == V_BAD) return acc;
        }
        return acc;
    }
    case N_NEG:
        return v_neg(c, gr_eval(c, sd, nd->a, point, pm));
    case N_POW:
        return v_pow(c, gr_eval(c, sd, nd->a, point, pm), gr_eval(c, sd, nd->b, point, pm));
    case N_SQRT:
        return v_sqrt(c, gr_eval(c, sd, nd->a, point, pm));
    case N_ROOT:
        return v_root(c, gr_eval(c, sd, nd->a, point, pm), gr_eval(c, sd, nd->b, point, pm));
    case N_FUNC:
        return v_func(c, nd->fn, gr_eval(c, sd, nd->a, point, pm));
    case N_LOG: {
        gr_val x = v_log(gr_eval(c, sd, nd->a, point, pm));
        if (nd->b >= 0) return v_div(c, x, v_log(gr_eval(c, sd, nd->b, point, pm)));
        return x;
    }
    case N_FACT:
        return v_fact(c, gr_eval(c, sd, nd->a, point, pm));
    case N_ABS: {
        gr_val x = gr_eval(c, sd, nd->a, point, pm);
        if (x.kind == V_EXACT && gr_rat_is_zero(x.im)) {
            if (x.re.num.neg) x.re = gr_rat_neg(x.re);
            return exact(c, x.re, x.im, x.flags);
        }
        if (x.kind == V_BAD) return x;
        return flt(cabs(zval(x)), x.flags);
    }
    case N_FLOOR:
    case N_CEIL:
        return v_round(c, gr_eval(c, sd, nd->a, point, pm), nd->op == N_CEIL);
    case N_BINOM:
        return v_binom(c, gr_eval(c, sd, nd->a, point, pm), gr_eval(c, sd, nd->b, point, pm));
    case N_PM: {
        gr_val b = gr_eval(c, sd, nd->b, point, pm);
        gr_val a = nd->a >= 0 ? gr_eval(c, sd, nd->a, point, pm) : v_int(c, 0);
        return v_add(c, a, b, pm < 0);
    }
    default:
        return bad();
    }
}

/* ---- random points ---------------------------------------------------------- */

static uint64_t mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

void gr_point(grader_ctx *c, const gr_vars *v, int k, gr_rat *out) {
    static const int64_t dens[] = {1, 2, 3, 5, 7, 4, 11};
    for (int j = 0; j < v->n; j++) {
        uint64_t h = 1469598103934665603ull;
        for (o1p_int m = 0; m < v->len[j]; m++) h = (h ^ (unsigned char)v->name[j][m]) * 1099511628211ull;
        for (o1p_int m = 0; m < v->slen[j]; m++) h = (h ^ (unsigned char)v->sub[j][m]) * 1099511628211ull;
        h = mix64(h ^ mix64((uint64_t)k + 1));
        /* numerators in +-[2, 17]; the first point uses integers */
        int64_t num = 2 + (int64_t)(h % 16);
        if ((h >> 8) & 1) num = -num;
        int64_t den = k == 0 ? 1 : dens[(h >> 16) % 7];
        out[j] = gr_rat_make(c, gr_big_from_i64(c, num), gr_big_from_i64(c, den));
    }
}

/* ---- comparing values -------------------------------------------------------- */

int gr_compare_values(grader_ctx *c, gr_val a, gr_val b, double rtol) {
    if (a.kind == V_BAD || b.kind == V_BAD) return GRADER_UNKNOWN;
    /* infinity (written \infty) against infinity; an exact number whose double
     * overflowed is not infinite: it is compared exactly below */
    int ainf = a.kind == V_FLOAT && (isinf(a.fre) || isinf(a.fim));
    int binf = b.kind == V_FLOAT && (isinf(b.fre) || isinf(b.fim));
    if (ainf || binf) {
        if (ainf && binf && a.fre == b.fre && a.fim == b.fim) return GRADER_EQUAL;
        return GRADER_NOT_EQUAL;
    }
    int decimal = ((a.flags | b.flags) & VF_DECIMAL) != 0;
    if (a.kind == V_EXACT && b.kind == V_EXACT) {
        if (gr_rat_cmp(a.re, b.re) == 0 && gr_rat_cmp(a.im, b.im) == 0) return GRADER_EQUAL;
        /* a decimal approximation of a fraction whose expansion does not end */
        int approx = 0;
        if ((a.flags & VF_DECIMAL) && !(b.flags & VF_DECIMAL))
            approx = !gr_rat_terminates(c, b.re) || !gr_rat_terminates(c, b.im);
        if ((b.flags & VF_DECIMAL) && !(a.flags & VF_DECIMAL))
            approx = approx || !gr_rat_terminates(c, a.re) || !gr_rat_terminates(c, a.im);
        if (!approx) return GRADER_NOT_EQUAL;
    }
    double complex za = zval(a), zb = zval(b);
    if (!isfinite(creal(za)) || !isfinite(cimag(za)) || !isfinite(creal(zb)) || !isfinite(cimag(zb)))
        return GRADER_UNKNOWN; /* beyond double range: cannot compare approximately */
    double scale = fmax(cabs(za), cabs(zb));
    double diff = cabs(za - zb);
    if (scale < 1e-12) return GRADER_EQUAL; /* both zero within rounding */
    double rel = diff / scale;
    double tol = decimal ? rtol : 1e-9;
    if (rel <= tol) return GRADER_EQUAL;
    if (!decimal && rel <= 1e-6) return GRADER_UNKNOWN; /* too close to call in doubles */
    return GRADER_NOT_EQUAL;
}
