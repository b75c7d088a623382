/* grader_compare.c: answer structures and the three-valued comparison.
 * A normalised answer is read into items: expressions, text, multiple-choice
 * letters, bare lists and sets (order-insensitive), tuples and intervals
 * (ordered, brackets must match), unions, matrices and relations
 * (equations compared up to a constant factor, inequalities up to a positive
 * one, one-variable bounds against intervals). Also the public entry points:
 * grader_compare, grader_compare_many (OpenMP over pairs), grader_normalize. */
#include <complex.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "grader_internal.h"

#define ITEM_DEPTH 48

static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static char lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c; }

void grader_opts_default(grader_opts *o) {
    o->rtol = 1e-6;
    o->strict_fractions = 0;
    o->ordered_lists = 0;
}

typedef struct {
    grader_ctx *c;
    gr_vars vars;
    const grader_opts *o;
} cmpx;

/* ---- item construction ---------------------------------------------------- */

static gr_item *new_item(grader_ctx *c, int kind) {
    gr_item *it = (gr_item *)gr_alloc(c, sizeof(gr_item));
    if (!it) return NULL;
    memset(it, 0, sizeof *it);
    it->kind = kind;
    it->root = -1;
    it->eq_name = -1;
    return it;
}

static int is_opener(const gr_tok *t) {
    return (t->type == T_OP && (t->sub == '(' || t->sub == '[' || t->sub == '{')) ||
           t->type == T_LSET || t->type == T_BEGIN;
}
static int is_closer(const gr_tok *t) {
    return (t->type == T_OP && (t->sub == ')' || t->sub == ']' || t->sub == '}')) ||
           t->type == T_RSET || t->type == T_ENDENV;
}

/* Index of the token closing tok[lo] (an opener) within [lo, hi), or -1. */
static int match_close(const gr_side *sd, int lo, int hi) {
    int depth = 0;
    for (int k = lo; k < hi; k++) {
        if (is_opener(&sd->tok[k])) depth++;
        else if (is_closer(&sd->tok[k]) && --depth == 0) return k;
    }
    return -1;
}

/* Positions of depth-0 tokens satisfying `pred` in [lo, hi); returns count
 * (at most cap stored). */
typedef int (*tok_pred)(const gr_tok *);
static int split_at(const gr_side *sd, int lo, int hi, tok_pred pred, int *pos, int cap) {
    int depth = 0, n = 0;
    for (int k = lo; k < hi; k++) {
        const gr_tok *t = &sd->tok[k];
        if (is_opener(t)) depth++;
        else if (is_closer(t)) depth = depth > 0 ? depth - 1 : 0;
        else if (depth == 0 && pred(t)) {
            if (n < cap) pos[n] = k;
            n++;
        }
    }
    return n;
}

static int p_comma(const gr_tok *t) { return t->type == T_OP && (t->sub == ',' || t->sub == ';'); }
static int p_cup(const gr_tok *t) { return t->type == T_CMD && t->sub == GR_C_CUP; }
static int p_rowsep(const gr_tok *t) { return t->type == T_ROWSEP; }
static int p_amp(const gr_tok *t) { return t->type == T_OP && t->sub == '&'; }
static int p_bar(const gr_tok *t) { return t->type == T_OP && (t->sub == '|' || t->sub == ':'); }
static int rel_of(const gr_tok *t) {
    if (t->type == T_OP) {
        if (t->sub == '=') return R_EQ;
        if (t->sub == '<') return R_LT;
        if (t->sub == '>') return R_GT;
    } else if (t->type == T_CMD) {
        switch (t->sub) {
        case GR_C_LE: return R_LE;
        case GR_C_GE: return R_GE;
        case GR_C_NE: return R_NE;
        case GR_C_APPROX: case GR_C_EQUIV: return R_EQ;
        default: break;
        }
    }
    return -1;
}
static int p_rel(const gr_tok *t) { return rel_of(t) >= 0 || (t->type == T_CMD && t->sub == GR_C_IN); }

static o1p_int span_start(const gr_side *sd, int lo) { return sd->tok[lo].pos; }
static o1p_int span_end(const gr_side *sd, int hi) { return sd->tok[hi - 1].end; }

/* Words: a run of 3+ letters that is not a command or function name, the
 * word "no", or any non-ASCII character left by the normaliser makes an
 * element a text answer. */
static int looks_like_text(const char *s, o1p_int a, o1p_int b) {
    static const char *const fn[] = {"sqrt", "sin", "cos", "tan", "cot", "sec", "csc", "arcsin",
                                     "arccos", "arctan", "sinh", "cosh", "tanh", "exp", "log",
                                     "infty", "inf", NULL};
    int only_letters = 1;
    for (o1p_int i = a; i < b; i++) {
        if ((unsigned char)s[i] >= 0x80) return 1; /* words in other scripts */
        if (!is_alpha(s[i]) && s[i] != ' ') only_letters = 0;
    }
    for (o1p_int i = a; i < b; i++) {
        if (!is_alpha(s[i])) continue;
        o1p_int j = i;
        while (j < b && is_alpha(s[j])) j++;
        int cmd = (i > a && s[i - 1] == '\\') ||
                  (i >= a + 7 && memcmp(s + i - 7, "\\begin{", 7) == 0) ||
                  (i >= a + 5 && memcmp(s + i - 5, "\\end{", 5) == 0);
        o1p_int len = j - i;
        if (!cmd) {
            int known = 0;
            for (int k = 0; fn[k]; k++)
                if ((o1p_int)strlen(fn[k]) == len && memcmp(fn[k], s + i, (size_t)len) == 0) known = 1;
            if (!known && len >= 3) return 1;
            if (only_letters && len == 2 && lower(s[i]) == 'n' && lower(s[i + 1]) == 'o') return 1;
        }
        i = j - 1;
    }
    return 0;
}

static gr_item *text_item(grader_ctx *c, const gr_side *sd, int lo, int hi, int mathy) {
    gr_item *it = new_item(c, IT_TEXT);
    if (!it) return NULL;
    o1p_int a = span_start(sd, lo), b = span_end(sd, hi);
    char *t = (char *)gr_alloc(c, (size_t)(b - a + 1));
    if (!t) return NULL;
    o1p_int n = 0;
    for (o1p_int i = a; i < b; i++) {
        char ch = sd->s[i];
        if (ch == ' ' || ch == '{' || ch == '}') continue;
        t[n++] = lower(ch);
    }
    t[n] = '\0';
    it->text = t;
    it->tlen = n;
    it->mathy = mathy;
    return it;
}

/* "x", "f(x)", "a_{37}", "(p,q)", "|AB|", "A:B": a left-hand side that only
 * names the answer ("x = 5" answers 5). */
static int is_name(const gr_side *sd, int lo, int hi) {
    if (hi - lo > 12 || hi <= lo) return 0;
    int idents = 0;
    for (int k = lo; k < hi; k++) {
        const gr_tok *t = &sd->tok[k];
        if (t->type == T_IDENT) {
            idents++;
            continue;
        }
        if (t->type == T_OP && (t->sub == '(' || t->sub == ')' || t->sub == ',' || t->sub == '|' ||
                                t->sub == ':'))
            continue;
        return 0;
    }
    if (idents == 0) return 0;
    /* "xy" (a product) is not a name; "f(x)", "(p,q)" and "AB" (a segment) are */
    for (int k = lo; k + 1 < hi; k++) {
        const gr_tok *t = &sd->tok[k], *u = &sd->tok[k + 1];
        if (t->type == T_IDENT && u->type == T_IDENT) {
            char a = sd->s[t->pos], b = sd->s[u->pos];
            if (!(a >= 'A' && a <= 'Z' && b >= 'A' && b <= 'Z')) return 0;
        }
    }
    return 1;
}

/* Does the tree built in nodes [first, sd->nnode) contain a +-? */
static int has_ident(const gr_side *sd, int lo, int hi) {
    for (int k = lo; k < hi; k++)
        if (sd->tok[k].type == T_IDENT) return 1;
    return 0;
}

static int tree_has_pm(const gr_side *sd, int first) {
    for (int k = first; k < sd->nnode; k++)
        if (sd->node[k].op == N_PM) return 1;
    return 0;
}

static gr_item *parse_item(cmpx *x, gr_side *sd, int lo, int hi, int depth);

static gr_item *list_item(cmpx *x, gr_side *sd, int kind, int lo, int hi, const int *cuts, int ncut,
                          int depth) {
    gr_item *it = new_item(x->c, kind);
    if (!it) return NULL;
    it->el = (gr_item **)gr_alloc(x->c, sizeof(gr_item *) * (size_t)(ncut + 1));
    if (!it->el) return NULL;
    int a = lo;
    for (int k = 0; k <= ncut; k++) {
        int b = k < ncut ? cuts[k] : hi;
        if (b > a) {
            gr_item *e = parse_item(x, sd, a, b, depth + 1);
            if (!e) return NULL;
            it->el[it->n++] = e;
        }
        a = b + 1;
    }
    return it;
}

static gr_item *parse_matrix(cmpx *x, gr_side *sd, int lo, int hi, int depth) {
    const gr_tok *b = &sd->tok[lo];
    static const char *const envs[] = {"pmatrix", "bmatrix", "matrix", "array", "smallmatrix",
                                       "Bmatrix", NULL};
    int ok = 0;
    for (int k = 0; envs[k]; k++)
        if ((o1p_int)strlen(envs[k]) == b->slen && memcmp(envs[k], sd->s + b->spos, (size_t)b->slen) == 0) ok = 1;
    if (!ok) return text_item(x->c, sd, lo, hi, 1);
    int a = lo + 1, e = hi - 1;
    int nrow_cut = split_at(sd, a, e, p_rowsep, NULL, 0);
    int *rows = (int *)gr_alloc(x->c, sizeof(int) * (size_t)(nrow_cut + 1));
    if (!rows) return NULL;
    split_at(sd, a, e, p_rowsep, rows, nrow_cut);
    gr_item *m = new_item(x->c, IT_MATRIX);
    if (!m) return NULL;
    m->el = (gr_item **)gr_alloc(x->c, sizeof(gr_item *) * (size_t)(e - a + 1));
    if (!m->el) return NULL;
    int r0 = a;
    for (int r = 0; r <= nrow_cut; r++) {
        int r1 = r < nrow_cut ? rows[r] : e;
        if (r1 > r0) {
            int ncell = split_at(sd, r0, r1, p_amp, NULL, 0);
            int *cells = (int *)gr_alloc(x->c, sizeof(int) * (size_t)(ncell + 1));
            if (!cells) return NULL;
            split_at(sd, r0, r1, p_amp, cells, ncell);
            if (m->rows == 0) m->cols = ncell + 1;
            if (ncell + 1 != m->cols) return text_item(x->c, sd, lo, hi, 1);
            int c0 = r0;
            for (int k = 0; k <= ncell; k++) {
                int c1 = k < ncell ? cells[k] : r1;
                gr_item *cell = c1 > c0 ? parse_item(x, sd, c0, c1, depth + 1) : NULL;
                if (!cell) return text_item(x->c, sd, lo, hi, 1);
                m->el[m->n++] = cell;
                c0 = c1 + 1;
            }
            m->rows++;
        }
        r0 = r1 + 1;
    }
    if (m->rows == 0) return text_item(x->c, sd, lo, hi, 1);
    return m;
}

static gr_item *parse_item(cmpx *x, gr_side *sd, int lo, int hi, int depth) {
    grader_ctx *c = x->c;
    if (lo >= hi) return new_item(c, IT_EMPTY);
    if (depth > ITEM_DEPTH || c->err) return text_item(c, sd, lo, hi, 1);
    int stack_cuts[32];
    int *cuts = stack_cuts;
    /* 1. lists */
    int n = split_at(sd, lo, hi, p_comma, NULL, 0);
    if (n > 0) {
        if (n > 32) {
            cuts = (int *)gr_alloc(c, sizeof(int) * (size_t)n);
            if (!cuts) return NULL;
        }
        split_at(sd, lo, hi, p_comma, cuts, n);
        gr_item *it = list_item(x, sd, IT_LIST, lo, hi, cuts, n, depth);
        if (it && it->n == 1) return it->el[0];
        return it;
    }
    /* 2. unions of intervals */
    n = split_at(sd, lo, hi, p_cup, NULL, 0);
    if (n > 0) {
        if (n > 32) {
            cuts = (int *)gr_alloc(c, sizeof(int) * (size_t)n);
            if (!cuts) return NULL;
        }
        split_at(sd, lo, hi, p_cup, cuts, n);
        return list_item(x, sd, IT_UNION, lo, hi, cuts, n, depth);
    }
    /* 3. relations */
    n = split_at(sd, lo, hi, p_rel, NULL, 0);
    if (n > 0) {
        if (n > 32) return text_item(c, sd, lo, hi, 1);
        split_at(sd, lo, hi, p_rel, cuts, n);
        const gr_tok *first = &sd->tok[cuts[0]];
        if (first->type == T_CMD && first->sub == GR_C_IN) return parse_item(x, sd, cuts[0] + 1, hi, depth + 1);
        /* "x = 1/3 \approx 0.33": what follows the first \approx is a rounding */
        for (int k = 1; k < n; k++) {
            const gr_tok *t = &sd->tok[cuts[k]];
            if (t->type == T_CMD && t->sub == GR_C_APPROX) {
                hi = cuts[k];
                n = k;
                break;
            }
        }
        int all_eq = 1;
        for (int k = 0; k < n; k++) {
            int r = rel_of(&sd->tok[cuts[k]]);
            if (r != R_EQ) all_eq = 0;
            if (r < 0) return text_item(c, sd, lo, hi, 1); /* \in inside a chain */
        }
        /* "5 + 5 + 1 = 11": a chain of numbers stands for its last value */
        if (all_eq && !has_ident(sd, lo, cuts[0]) && !has_ident(sd, cuts[n - 1] + 1, hi))
            return parse_item(x, sd, cuts[n - 1] + 1, hi, depth + 1);
        if (all_eq && is_name(sd, lo, cuts[0])) {
            gr_item *v = parse_item(x, sd, cuts[n - 1] + 1, hi, depth + 1);
            if (v && v->kind == IT_EXPR && n == 1) { /* parsed only if compared to an equation */
                v->eq_lo = lo;
                v->eq_hi = cuts[0];
            }
            return v;
        }
        gr_item *it = list_item(x, sd, IT_REL, lo, hi, cuts, n, depth);
        if (!it) return NULL;
        if (it->n != n + 1) return text_item(c, sd, lo, hi, 1);
        it->ops = (int *)gr_alloc(c, sizeof(int) * (size_t)n);
        if (!it->ops) return NULL;
        for (int k = 0; k < n; k++) it->ops[k] = rel_of(&sd->tok[cuts[k]]);
        for (int k = 0; k <= n; k++)
            if (it->el[k]->kind != IT_EXPR) return text_item(c, sd, lo, hi, 1);
        return it;
    }
    /* 4. whole brackets */
    const gr_tok *t0 = &sd->tok[lo];
    if (is_opener(t0) && match_close(sd, lo, hi) == hi - 1) {
        const gr_tok *t1 = &sd->tok[hi - 1];
        if (t0->type == T_BEGIN) return parse_matrix(x, sd, lo, hi, depth);
        if (t0->type == T_LSET) {
            int bar[1];
            if (split_at(sd, lo + 1, hi - 1, p_bar, bar, 1) > 0) /* {x | condition} */
                return parse_item(x, sd, bar[0] + 1, hi - 1, depth + 1);
            int nc = split_at(sd, lo + 1, hi - 1, p_comma, NULL, 0);
            int *cc = (int *)gr_alloc(c, sizeof(int) * (size_t)(nc + 1));
            if (!cc) return NULL;
            split_at(sd, lo + 1, hi - 1, p_comma, cc, nc);
            return list_item(x, sd, IT_SET, lo + 1, hi - 1, cc, nc, depth);
        }
        if (t0->type == T_OP && t0->sub == '{') return parse_item(x, sd, lo + 1, hi - 1, depth + 1);
        if (t0->type == T_OP && t1->type == T_OP && (t0->sub == '(' || t0->sub == '[') &&
            (t1->sub == ')' || t1->sub == ']')) {
            int nc = split_at(sd, lo + 1, hi - 1, p_comma, NULL, 0);
            if (nc == 0) {
                if ((t0->sub == '(') == (t1->sub == ')')) return parse_item(x, sd, lo + 1, hi - 1, depth + 1);
                return text_item(c, sd, lo, hi, 1);
            }
            int *cc = (int *)gr_alloc(c, sizeof(int) * (size_t)(nc + 1));
            if (!cc) return NULL;
            split_at(sd, lo + 1, hi - 1, p_comma, cc, nc);
            gr_item *it = list_item(x, sd, IT_TUPLE, lo + 1, hi - 1, cc, nc, depth);
            if (it) {
                it->open = (char)t0->sub;
                it->close = (char)t1->sub;
            }
            return it;
        }
    }
    if (hi - lo == 1 && t0->type == T_CMD && t0->sub == GR_C_EMPTYSET) return new_item(c, IT_SET);
    /* 5. words */
    if (looks_like_text(sd->s, span_start(sd, lo), span_end(sd, hi))) return text_item(c, sd, lo, hi, 0);
    /* 6. an expression */
    int first = sd->nnode;
    int root = gr_parse_expr(c, sd, &x->vars, lo, hi);
    if (root < 0) return text_item(c, sd, lo, hi, 1);
    gr_item *it = new_item(c, IT_EXPR);
    if (!it) return NULL;
    it->root = root;
    it->has_pm = tree_has_pm(sd, first);
    return it;
}

/* ---- comparing expressions --------------------------------------------------- */

typedef struct {
    const gr_side *sd;
    const gr_item *it;
} side_item;

/* Canonical text of a plain decimal literal: no leading zeros, no trailing
 * fractional zeros (so any size compares exactly, in linear time). */
static void canon_literal(const char *s, o1p_int n, o1p_int *a, o1p_int *b, o1p_int *dot) {
    o1p_int i = 0, e = n;
    while (i < n - 1 && s[i] == '0' && s[i + 1] != '.') i++;
    o1p_int d = -1;
    for (o1p_int k = i; k < n; k++)
        if (s[k] == '.') d = k;
    if (d >= 0) {
        while (e > d + 1 && s[e - 1] == '0') e--;
        if (e == d + 1) {
            e = d;
            d = -1;
        }
    }
    *a = i;
    *b = e;
    *dot = d;
}

/* Literal of a plain number node (possibly negated): sets sign/slice. */
static int plain_literal(const gr_side *sd, int root, int *neg, const char **s, o1p_int *n) {
    *neg = 0;
    while (root >= 0 && sd->node[root].op == N_NEG) {
        *neg = !*neg;
        root = sd->node[root].a;
    }
    if (root < 0 || sd->node[root].op != N_NUM) return 0;
    const gr_node *nd = &sd->node[root];
    for (o1p_int k = 0; k < nd->len; k++)
        if (sd->s[nd->pos + k] == 'e' || sd->s[nd->pos + k] == 'E') return 0;
    *s = sd->s + nd->pos;
    *n = nd->len;
    return 1;
}

static int literal_equal(const char *s1, o1p_int n1, int neg1, const char *s2, o1p_int n2, int neg2) {
    o1p_int a1, b1, d1, a2, b2, d2;
    canon_literal(s1, n1, &a1, &b1, &d1);
    canon_literal(s2, n2, &a2, &b2, &d2);
    /* ".5" and "0.5" */
    if (s1[a1] == '0' && a1 + 1 < b1 && s1[a1 + 1] == '.') a1++;
    if (s2[a2] == '0' && a2 + 1 < b2 && s2[a2 + 1] == '.') a2++;
    int zero1 = (b1 - a1 == 1 && s1[a1] == '0'), zero2 = (b2 - a2 == 1 && s2[a2] == '0');
    if (zero1 && zero2) return 1;
    if (neg1 != neg2) return 0;
    return b1 - a1 == b2 - a2 && memcmp(s1 + a1, s2 + a2, (size_t)(b1 - a1)) == 0;
}

/* integer literal (PRM800K's notion: "4.0" counts as the integer 4) */
static int is_int_form(const gr_side *sd, int root) {
    int neg;
    const char *s;
    o1p_int n;
    if (!plain_literal(sd, root, &neg, &s, &n)) return 0;
    o1p_int a, b, d;
    canon_literal(s, n, &a, &b, &d);
    return d < 0;
}

/* \frac{int}{int} or int/int, possibly negated: numerator and denominator literals */
static int frac_form(const gr_side *sd, int root, int *neg, int *num, int *den) {
    *neg = 0;
    while (root >= 0 && sd->node[root].op == N_NEG) {
        *neg = !*neg;
        root = sd->node[root].a;
    }
    if (root < 0 || sd->node[root].op != N_PROD) return 0;
    int a = sd->node[root].a, b = a >= 0 ? sd->node[a].next : -1;
    if (a < 0 || b < 0 || sd->node[b].next >= 0 || !(sd->node[b].flags & NF_NEGATE)) return 0;
    if (!is_int_form(sd, a) || !is_int_form(sd, b)) return 0;
    *num = a;
    *den = b;
    return 1;
}

static int node_literal_equal(const gr_side *s1, int r1, const gr_side *s2, int r2) {
    int n1, n2;
    const char *a, *b;
    o1p_int la, lb;
    if (!plain_literal(s1, r1, &n1, &a, &la) || !plain_literal(s2, r2, &n2, &b, &lb)) return 0;
    return literal_equal(a, la, n1, b, lb, n2);
}

/* "2516_8" against "2516": the same digits, the base left implicit */
static int basenum_digits(const gr_side *sb, int rb, const gr_side *sn, int rn) {
    const gr_node *b = &sb->node[rb], *n = &sn->node[rn];
    if (b->op != N_BASENUM || n->op != N_NUM || (n->flags & NF_DECIMAL)) return -1;
    o1p_int lb = b->len, ln = n->len;
    const char *pb = sb->s + b->pos, *pn = sn->s + n->pos;
    while (lb > 1 && *pb == '0') pb++, lb--;
    while (ln > 1 && *pn == '0') pn++, ln--;
    return lb == ln && memcmp(pb, pn, (size_t)lb) == 0;
}

static int cmp_expr(cmpx *x, side_item a, side_item b) {
    grader_ctx *c = x->c;
    int ra = a.it->root, rb = b.it->root;
    int bd = basenum_digits(a.sd, ra, b.sd, rb);
    if (bd < 0) bd = basenum_digits(b.sd, rb, a.sd, ra);
    if (bd >= 0) return bd ? GRADER_EQUAL : GRADER_NOT_EQUAL;
    /* plain literals: exact digit comparison, any size */
    if (!a.it->has_pm && !b.it->has_pm) {
        int n1, n2;
        const char *s1, *s2;
        o1p_int l1, l2;
        if (plain_literal(a.sd, ra, &n1, &s1, &l1) && plain_literal(b.sd, rb, &n2, &s2, &l2)) {
            if (!x->o->strict_fractions || is_int_form(a.sd, ra) == is_int_form(b.sd, rb))
                return literal_equal(s1, l1, n1, s2, l2, n2) ? GRADER_EQUAL : GRADER_NOT_EQUAL;
            return GRADER_NOT_EQUAL;
        }
    }
    if (x->o->strict_fractions) {
        /* a = prediction, b = gold */
        if (is_int_form(a.sd, ra) != is_int_form(b.sd, rb)) return GRADER_NOT_EQUAL;
        int ng, nn, nd, pg, pn, pd;
        if (frac_form(b.sd, rb, &ng, &nn, &nd) && frac_form(a.sd, ra, &pg, &pn, &pd)) {
            int same = ng == pg && node_literal_equal(a.sd, pn, b.sd, nn) && node_literal_equal(a.sd, pd, b.sd, nd);
            return same ? GRADER_EQUAL : GRADER_NOT_EQUAL;
        }
    }
    int npts = x->vars.n > 0 ? GR_NPOINTS : 1;
    gr_rat *pt = x->vars.n > 0 ? (gr_rat *)gr_alloc(c, sizeof(gr_rat) * (size_t)x->vars.n) : NULL;
    if (x->vars.n > 0 && !pt) return GRADER_UNKNOWN;
    int eq = 0, unk = 0;
    for (int k = 0; k < npts; k++) {
        if (pt) gr_point(c, &x->vars, k, pt);
        gr_val va = gr_eval(c, a.sd, ra, pt, a.it->pm ? a.it->pm : 1);
        gr_val vb = gr_eval(c, b.sd, rb, pt, b.it->pm ? b.it->pm : 1);
        if (c->err) return GRADER_UNKNOWN;
        int v = gr_compare_values(c, va, vb, x->o->rtol);
        if (v == GRADER_NOT_EQUAL) return GRADER_NOT_EQUAL;
        if (v == GRADER_EQUAL) eq++;
        else unk++;
    }
    if (npts == 1) return eq ? GRADER_EQUAL : GRADER_UNKNOWN;
    return (eq >= 3 && unk <= 1) ? GRADER_EQUAL : GRADER_UNKNOWN;
}

/* ---- relations ----------------------------------------------------------------- */

/* f = L - R of a relation side pair. */
typedef struct {
    const gr_side *sd;
    int l, r; /* roots; r may be -1 (f = L) */
    int pm;
} rel_fn;

static gr_val eval_fn(cmpx *x, rel_fn f, const gr_rat *pt) {
    gr_val a = gr_eval(x->c, f.sd, f.l, pt, f.pm ? f.pm : 1);
    if (f.r < 0) return a;
    gr_val b = gr_eval(x->c, f.sd, f.r, pt, f.pm ? f.pm : 1);
    /* a - b through the evaluator's own arithmetic: reuse N_SUM semantics */
    if (a.kind == V_BAD || b.kind == V_BAD) return a.kind == V_BAD ? a : b;
    gr_val r;
    memset(&r, 0, sizeof r);
    r.flags = a.flags | b.flags;
    if (a.kind == V_EXACT && b.kind == V_EXACT) {
        r.kind = V_EXACT;
        r.re = gr_rat_sub(x->c, a.re, b.re);
        r.im = gr_rat_sub(x->c, a.im, b.im);
        r.fre = gr_rat_to_double(r.re);
        r.fim = gr_rat_to_double(r.im);
    } else {
        r.kind = V_FLOAT;
        r.fre = a.fre - b.fre;
        r.fim = a.fim - b.fim;
    }
    return r;
}

static int val_is_zero(gr_val v) {
    if (v.kind == V_EXACT) return gr_rat_is_zero(v.re) && gr_rat_is_zero(v.im);
    return v.fre == 0.0 && v.fim == 0.0;
}

/* Is f1 = k f2 for one constant k != 0 (k > 0 when positive)? */
static int proportional(cmpx *x, rel_fn f1, rel_fn f2, int positive) {
    grader_ctx *c = x->c;
    int npts = x->vars.n > 0 ? GR_NPOINTS : 1;
    gr_rat *pt = x->vars.n > 0 ? (gr_rat *)gr_alloc(c, sizeof(gr_rat) * (size_t)x->vars.n) : NULL;
    if (x->vars.n > 0 && !pt) return GRADER_UNKNOWN;
    gr_val k0;
    int have = 0, informative = 0, unsure = 0;
    for (int k = 0; k < npts; k++) {
        if (pt) gr_point(c, &x->vars, k, pt);
        gr_val a = eval_fn(x, f1, pt), b = eval_fn(x, f2, pt);
        if (c->err) return GRADER_UNKNOWN;
        if (a.kind == V_BAD || b.kind == V_BAD) {
            unsure++;
            continue;
        }
        int za = val_is_zero(a), zb = val_is_zero(b);
        if (za && zb) continue;
        if (za != zb) {
            /* exact zero against a nonzero value decides; doubles might be rounding */
            if ((za ? b : a).kind == V_EXACT || fabs((za ? b : a).fre) > 1e-9) return GRADER_NOT_EQUAL;
            unsure++;
            continue;
        }
        /* ratio a / b */
        gr_val q;
        if (a.kind == V_EXACT && b.kind == V_EXACT && gr_rat_is_zero(a.im) && gr_rat_is_zero(b.im)) {
            memset(&q, 0, sizeof q);
            q.kind = V_EXACT;
            q.re = gr_rat_div(c, a.re, b.re);
            q.im = a.im;
            q.fre = gr_rat_to_double(q.re);
        } else {
            double complex za_ = a.fre + a.fim * I, zb_ = b.fre + b.fim * I;
            double complex z = za_ / zb_;
            memset(&q, 0, sizeof q);
            q.kind = V_FLOAT;
            q.fre = creal(z);
            q.fim = cimag(z);
        }
        q.flags = a.flags | b.flags;
        informative++;
        if (!have) {
            k0 = q;
            have = 1;
            if (positive && !(q.fim == 0.0 && q.fre > 0.0)) return GRADER_NOT_EQUAL;
            continue;
        }
        int v = gr_compare_values(c, q, k0, x->o->rtol);
        if (v == GRADER_NOT_EQUAL) return GRADER_NOT_EQUAL;
        if (v == GRADER_UNKNOWN) unsure++;
    }
    if (!have) return GRADER_UNKNOWN;
    if (npts == 1) return GRADER_EQUAL;
    return (informative >= 3 && unsure <= 1) ? GRADER_EQUAL : GRADER_UNKNOWN;
}

static int flip(int op) {
    switch (op) {
    case R_LT: return R_GT;
    case R_GT: return R_LT;
    case R_LE: return R_GE;
    case R_GE: return R_LE;
    default: return op;
    }
}

static int cmp_items(cmpx *x, const gr_side *sa, const gr_item *a, const gr_side *sb, const gr_item *b,
                     int depth);

/* single relation L op R as (f, kind): inequalities oriented to f > 0 / f >= 0 */
static void orient(const gr_side *sd, const gr_item *it, rel_fn *f, int *op) {
    int o = it->ops[0];
    f->sd = sd;
    f->pm = 0;
    if (o == R_LT || o == R_LE) {
        f->l = it->el[1]->root;
        f->r = it->el[0]->root;
        *op = o == R_LT ? R_GT : R_GE;
    } else {
        f->l = it->el[0]->root;
        f->r = it->el[1]->root;
        *op = o;
    }
}

static int cmp_rel(cmpx *x, const gr_side *sa, const gr_item *a, const gr_side *sb, const gr_item *b,
                   int depth) {
    if (a->n == 2 && b->n == 2) {
        rel_fn fa, fb;
        int oa, ob;
        orient(sa, a, &fa, &oa);
        orient(sb, b, &fb, &ob);
        if (oa != ob) return GRADER_NOT_EQUAL;
        return proportional(x, fa, fb, oa == R_GT || oa == R_GE);
    }
    if (a->n != b->n) return GRADER_NOT_EQUAL;
    /* chains: same operators side by side, or the whole chain reversed */
    for (int dir = 0; dir < 2; dir++) {
        int ok = 1, unk = 0;
        for (int k = 0; k + 1 < a->n && ok; k++) {
            int ob = dir ? flip(b->ops[b->n - 2 - k]) : b->ops[k];
            if (a->ops[k] != ob) ok = 0;
        }
        for (int k = 0; k < a->n && ok; k++) {
            int v = cmp_items(x, sa, a->el[k], sb, b->el[dir ? b->n - 1 - k : k], depth + 1);
            if (v == GRADER_NOT_EQUAL) ok = 0;
            if (v == GRADER_UNKNOWN) unk = 1;
        }
        if (ok) return unk ? GRADER_UNKNOWN : GRADER_EQUAL;
    }
    return GRADER_NOT_EQUAL;
}

/* Value of an endpoint item: +1 for +infinity, -1 for -infinity, 0 finite. */
static int inf_sign(cmpx *x, const gr_side *sd, const gr_item *it) {
    if (it->kind != IT_EXPR) return 0;
    gr_val v = gr_eval(x->c, sd, it->root, NULL, 1);
    if (v.kind == V_FLOAT && (v.flags & VF_INF) && v.fim == 0.0) return v.fre > 0 ? 1 : -1;
    return 0;
}

static int lone_var(const gr_side *sd, const gr_item *it) {
    return it->kind == IT_EXPR && sd->node[it->root].op == N_VAR;
}

/* A one-variable bound (x > c, c <= x < d) against an interval (a, b]. */
static int rel_vs_interval(cmpx *x, const gr_side *sr, const gr_item *r, const gr_side *si,
                           const gr_item *iv, int depth) {
    if (iv->kind != IT_TUPLE || iv->n != 2) return GRADER_NOT_EQUAL;
    const gr_item *lo = NULL, *hi = NULL;
    int lo_closed = 0, hi_closed = 0;
    if (r->n == 2) {
        int op = r->ops[0];
        const gr_item *bound;
        if (lone_var(sr, r->el[0])) bound = r->el[1];
        else if (lone_var(sr, r->el[1])) {
            bound = r->el[0];
            op = flip(op);
        } else return GRADER_UNKNOWN;
        if (op == R_GT || op == R_GE) {
            lo = bound;
            lo_closed = op == R_GE;
        } else if (op == R_LT || op == R_LE) {
            hi = bound;
            hi_closed = op == R_LE;
        } else return GRADER_NOT_EQUAL;
    } else if (r->n == 3 && lone_var(sr, r->el[1])) {
        int o1 = r->ops[0], o2 = r->ops[1];
        if ((o1 == R_LT || o1 == R_LE) && (o2 == R_LT || o2 == R_LE)) {
            lo = r->el[0];
            hi = r->el[2];
            lo_closed = o1 == R_LE;
            hi_closed = o2 == R_LE;
        } else if ((o1 == R_GT || o1 == R_GE) && (o2 == R_GT || o2 == R_GE)) {
            hi = r->el[0];
            lo = r->el[2];
            hi_closed = o1 == R_GE;
            lo_closed = o2 == R_GE;
        } else return GRADER_NOT_EQUAL;
    } else {
        return GRADER_UNKNOWN; /* |z| <= 2, 0 < f(x) < 1: no interval we can read */
    }
    int v = GRADER_EQUAL;
    /* lower end */
    if (lo) {
        if ((iv->open == '[') != lo_closed) return GRADER_NOT_EQUAL;
        int w = cmp_items(x, sr, lo, si, iv->el[0], depth + 1);
        if (w == GRADER_NOT_EQUAL) return w;
        if (w == GRADER_UNKNOWN) v = w;
    } else if (inf_sign(x, si, iv->el[0]) != -1) {
        return GRADER_NOT_EQUAL;
    }
    if (hi) {
        if ((iv->close == ']') != hi_closed) return GRADER_NOT_EQUAL;
        int w = cmp_items(x, sr, hi, si, iv->el[1], depth + 1);
        if (w == GRADER_NOT_EQUAL) return w;
        if (w == GRADER_UNKNOWN) v = w;
    } else if (inf_sign(x, si, iv->el[1]) != 1) {
        return GRADER_NOT_EQUAL;
    }
    return v;
}

/* ---- lists, sets, tuples ----------------------------------------------------- */

/* Elements of a list-like item with +- expanded, nested bare lists flattened. */
static int flatten(cmpx *x, const gr_item *it, const gr_item ***out) {
    int cap = 2 * it->n + 2;
    const gr_item **v = (const gr_item **)gr_alloc(x->c, sizeof(gr_item *) * (size_t)cap);
    if (!v) return -1;
    int n = 0;
    for (int k = 0; k < it->n && n + 2 <= cap; k++) {
        const gr_item *e = it->el[k];
        if (e->kind == IT_EXPR && e->has_pm && !e->pm) {
            gr_item *p = new_item(x->c, IT_EXPR), *m = new_item(x->c, IT_EXPR);
            if (!p || !m) return -1;
            *p = *e;
            *m = *e;
            p->pm = 1;
            m->pm = -1;
            v[n++] = p;
            v[n++] = m;
        } else {
            v[n++] = e;
        }
    }
    *out = v;
    return n;
}

static int cmp_ordered(cmpx *x, const gr_side *sa, const gr_item *const *a, const gr_side *sb,
                       const gr_item *const *b, int n, int depth) {
    int v = GRADER_EQUAL;
    for (int k = 0; k < n; k++) {
        int w = cmp_items(x, sa, a[k], sb, b[k], depth + 1);
        if (w == GRADER_NOT_EQUAL) return w;
        if (w == GRADER_UNKNOWN) v = w;
    }
    return v;
}

/* Kuhn's augmenting paths on the verdict matrix (edges: verdict <= `allow`
 * in the order EQUAL < UNKNOWN); n is at most GR_MAX_ITEMS. */
static int try_kuhn(const int8_t *m, int n, int allow_unknown, int i, int *match, uint8_t *seen, int depth) {
    if (depth > n) return 0;
    for (int j = 0; j < n; j++) {
        int8_t v = m[i * n + j];
        int ok = v == GRADER_EQUAL || (allow_unknown && v == GRADER_UNKNOWN);
        if (!ok || seen[j]) continue;
        seen[j] = 1;
        if (match[j] < 0 || try_kuhn(m, n, allow_unknown, match[j], match, seen, depth + 1)) {
            match[j] = i;
            return 1;
        }
    }
    return 0;
}

static int perfect(grader_ctx *c, const int8_t *m, int n, int allow_unknown) {
    int *match = (int *)gr_alloc(c, sizeof(int) * (size_t)n);
    uint8_t *seen = (uint8_t *)gr_alloc(c, (size_t)n);
    if (!match || !seen) return 0;
    for (int j = 0; j < n; j++) match[j] = -1;
    for (int i = 0; i < n; i++) {
        memset(seen, 0, (size_t)n);
        if (!try_kuhn(m, n, allow_unknown, i, match, seen, 0)) return 0;
    }
    return 1;
}

/* drop elements equal to an earlier one (sets) */
static int dedup(cmpx *x, const gr_side *sd, const gr_item **v, int n, int depth) {
    int m = 0;
    for (int i = 0; i < n; i++) {
        int dup = 0;
        for (int j = 0; j < m && !dup; j++) dup = cmp_items(x, sd, v[i], sd, v[j], depth + 1) == GRADER_EQUAL;
        if (!dup) v[m++] = v[i];
    }
    return m;
}

static int cmp_unordered(cmpx *x, const gr_side *sa, const gr_item *a, const gr_side *sb, const gr_item *b,
                         int depth) {
    const gr_item **va, **vb;
    int na = flatten(x, a, &va), nb = flatten(x, b, &vb);
    if (na < 0 || nb < 0) return GRADER_UNKNOWN;
    if (na > GR_MAX_ITEMS || nb > GR_MAX_ITEMS) return GRADER_UNKNOWN;
    /* a set, and an unordered list of answers, counts each value once */
    if (a->kind == IT_SET || !x->o->ordered_lists) na = dedup(x, sa, va, na, depth);
    if (b->kind == IT_SET || !x->o->ordered_lists) nb = dedup(x, sb, vb, nb, depth);
    if (na != nb) return GRADER_NOT_EQUAL;
    if (na == 0) return GRADER_EQUAL;
    /* in order first: the usual case costs n comparisons */
    int v = cmp_ordered(x, sa, va, sb, vb, na, depth);
    if (v == GRADER_EQUAL || x->o->ordered_lists) return v;
    int8_t *m = (int8_t *)gr_alloc(x->c, (size_t)na * (size_t)na);
    if (!m) return GRADER_UNKNOWN;
    for (int i = 0; i < na; i++)
        for (int j = 0; j < na; j++) m[i * na + j] = (int8_t)cmp_items(x, sa, va[i], sb, vb[j], depth + 1);
    if (perfect(x->c, m, na, 0)) return GRADER_EQUAL;
    if (perfect(x->c, m, na, 1)) return GRADER_UNKNOWN;
    return GRADER_NOT_EQUAL;
}

static const gr_item *unwrap1(const gr_item *it) {
    while ((it->kind == IT_LIST || it->kind == IT_UNION) && it->n == 1) it = it->el[0];
    return it;
}

static int listlike(int k) { return k == IT_LIST || k == IT_SET; }

static int cmp_items(cmpx *x, const gr_side *sa, const gr_item *a, const gr_side *sb, const gr_item *b,
                     int depth) {
    if (depth > ITEM_DEPTH || x->c->err) return GRADER_UNKNOWN;
    a = unwrap1(a);
    b = unwrap1(b);
    /* an answer with +- is the list of its two values */
    gr_item tmp_a, tmp_b;
    const gr_item *pa[1], *pb[1];
    if (a->kind == IT_EXPR && a->has_pm && !a->pm) {
        pa[0] = a;
        memset(&tmp_a, 0, sizeof tmp_a);
        tmp_a.kind = IT_LIST;
        tmp_a.n = 1;
        tmp_a.el = (gr_item **)pa;
        a = &tmp_a;
    }
    if (b->kind == IT_EXPR && b->has_pm && !b->pm) {
        pb[0] = b;
        memset(&tmp_b, 0, sizeof tmp_b);
        tmp_b.kind = IT_LIST;
        tmp_b.n = 1;
        tmp_b.el = (gr_item **)pb;
        b = &tmp_b;
    }
    int ka = a->kind, kb = b->kind;
    if (ka == IT_EMPTY || kb == IT_EMPTY) return ka == kb ? GRADER_EQUAL : GRADER_NOT_EQUAL;
    if (ka == IT_TEXT || kb == IT_TEXT) {
        if (ka == kb) {
            if (a->tlen == b->tlen && memcmp(a->text, b->text, (size_t)a->tlen) == 0) return GRADER_EQUAL;
            return (a->mathy || b->mathy) ? GRADER_UNKNOWN : GRADER_NOT_EQUAL;
        }
        const gr_item *t = ka == IT_TEXT ? a : b;
        return t->mathy ? GRADER_UNKNOWN : GRADER_NOT_EQUAL;
    }
    if (ka == IT_EXPR && kb == IT_EXPR) return cmp_expr(x, (side_item){sa, a}, (side_item){sb, b});
    if (ka == IT_REL && kb == IT_REL) return cmp_rel(x, sa, a, sb, b, depth);
    if (ka == IT_REL && kb == IT_TUPLE) return rel_vs_interval(x, sa, a, sb, b, depth);
    if (kb == IT_REL && ka == IT_TUPLE) return rel_vs_interval(x, sb, b, sa, a, depth);
    if ((ka == IT_REL && kb == IT_UNION) || (kb == IT_REL && ka == IT_UNION)) return GRADER_UNKNOWN;
    if ((ka == IT_REL && kb == IT_EXPR && b->eq_hi > b->eq_lo) || (kb == IT_REL && ka == IT_EXPR && a->eq_hi > a->eq_lo)) {
        /* "y = 2x + 3" (read as the value 2x + 3) against "2x - y + 3 = 0" */
        const gr_side *sr = ka == IT_REL ? sa : sb, *se = ka == IT_REL ? sb : sa;
        const gr_item *r = ka == IT_REL ? a : b;
        gr_item *e = (gr_item *)(ka == IT_REL ? b : a);
        if (r->n != 2 || r->ops[0] != R_EQ) return GRADER_NOT_EQUAL;
        if (e->eq_name < 0) e->eq_name = gr_parse_expr(x->c, (gr_side *)se, &x->vars, e->eq_lo, e->eq_hi);
        if (e->eq_name < 0) return GRADER_NOT_EQUAL;
        rel_fn f1 = {sr, r->el[0]->root, r->el[1]->root, 0}, f2 = {se, e->eq_name, e->root, e->pm};
        return proportional(x, f1, f2, 0);
    }
    if (listlike(ka) && listlike(kb)) return cmp_unordered(x, sa, a, sb, b, depth);
    if (ka == IT_UNION && kb == IT_UNION) return cmp_unordered(x, sa, a, sb, b, depth);
    if (ka == IT_TUPLE && kb == IT_TUPLE) {
        if (a->n != b->n) return GRADER_NOT_EQUAL;
        if (a->n == 2 && (a->open != b->open || a->close != b->close)) return GRADER_NOT_EQUAL;
        return cmp_ordered(x, sa, (const gr_item *const *)a->el, sb, (const gr_item *const *)b->el, a->n, depth);
    }
    if ((ka == IT_TUPLE && kb == IT_LIST) || (ka == IT_LIST && kb == IT_TUPLE)) {
        /* "(1, 3)" against "1, 3": in order */
        const gr_item **va, **vb;
        int na = flatten(x, a, &va), nb = flatten(x, b, &vb);
        if (na < 0 || nb < 0) return GRADER_UNKNOWN;
        if (na != nb) return GRADER_NOT_EQUAL;
        return cmp_ordered(x, sa, va, sb, vb, na, depth);
    }
    if (ka == IT_MATRIX && kb == IT_MATRIX) {
        if (a->rows != b->rows || a->cols != b->cols) return GRADER_NOT_EQUAL;
        return cmp_ordered(x, sa, (const gr_item *const *)a->el, sb, (const gr_item *const *)b->el, a->n, depth);
    }
    if ((ka == IT_MATRIX && (kb == IT_TUPLE || kb == IT_LIST)) || (kb == IT_MATRIX && (ka == IT_TUPLE || ka == IT_LIST))) {
        /* a column or row vector against a tuple */
        const gr_item *m = ka == IT_MATRIX ? a : b, *t = ka == IT_MATRIX ? b : a;
        if (!(m->rows == 1 || m->cols == 1) || m->n != t->n) return GRADER_NOT_EQUAL;
        return cmp_ordered(x, sa, (const gr_item *const *)a->el, sb, (const gr_item *const *)b->el, a->n, depth);
    }
    return GRADER_NOT_EQUAL;
}

/* ---- multiple choice --------------------------------------------------------- */

/* Letter of "(B)", "B", "B)" (gold: uppercase, or any letter in parentheses);
 * 0 if not a choice. For predictions also "(B) 12" and "B. text". */
static char choice_letter(const char *s, o1p_int n, int is_gold) {
    o1p_int i = 0;
    int paren = 0;
    if (i < n && s[i] == '(') {
        paren = 1;
        i++;
    }
    if (i >= n || !is_alpha(s[i])) return 0;
    char L = s[i++];
    if (paren) {
        if (i >= n || s[i] != ')') return 0;
        i++;
    } else if (i < n && s[i] == ')') {
        i++;
        paren = 1;
    }
    if (i == n) return (is_gold && !paren && !(L >= 'A' && L <= 'Z')) ? 0 : (char)(L | 0x20);
    if (is_gold) return 0;
    if (s[i] == ' ' || s[i] == '.' || s[i] == ':') return (char)(L | 0x20); /* "B. text" */
    if (paren && !strchr("+-*/^=_", s[i])) return (char)(L | 0x20);       /* "(B) 12" */
    return 0;
}

/* ---- entry points ----------------------------------------------------------------- */

static int compare_impl(grader_ctx *c, const char *pred, o1p_int np, const char *gold, o1p_int ng,
                        const grader_opts *o) {
    o1p_int lp, lg;
    char *p = gr_normalize(c, pred, np, &lp);
    char *g = p ? gr_normalize(c, gold, ng, &lg) : NULL;
    if (!p || !g) return GRADER_UNKNOWN;
    if (lp == 0 || lg == 0) return GRADER_NOT_EQUAL;
    if (lp == lg && memcmp(p, g, (size_t)lp) == 0) return GRADER_EQUAL;
    char cg = choice_letter(g, lg, 1);
    if (cg) {
        char cp = choice_letter(p, lp, 0);
        return cp == cg ? GRADER_EQUAL : GRADER_NOT_EQUAL;
    }
    if (lp > GR_MAX_PARSE || lg > GR_MAX_PARSE) return GRADER_UNKNOWN;
    cmpx x;
    memset(&x, 0, sizeof x);
    x.c = c;
    x.o = o;
    gr_side sp = {p, lp, NULL, 0, NULL, 0, 0}, sg = {g, lg, NULL, 0, NULL, 0, 0};
    if (!gr_tokenize(c, &sp) || !gr_tokenize(c, &sg)) return GRADER_UNKNOWN;
    gr_item *ip = parse_item(&x, &sp, 0, sp.ntok, 0);
    gr_item *ig = parse_item(&x, &sg, 0, sg.ntok, 0);
    if (!ip || !ig || c->err) return GRADER_UNKNOWN;
    int v = cmp_items(&x, &sp, ip, &sg, ig, 0);
    return c->err ? GRADER_UNKNOWN : v;
}

int grader_compare(grader_ctx *ctx, const char *pred, o1p_int np, const char *gold, o1p_int ng,
                   const grader_opts *opts) {
    grader_opts def;
    if (!opts) {
        grader_opts_default(&def);
        opts = &def;
    }
    if (pred == NULL) return GRADER_NOT_EQUAL;
    grader_ctx *c = ctx ? ctx : grader_ctx_new();
    if (!c) return GRADER_UNKNOWN;
    int v = compare_impl(c, pred, np, gold ? gold : "", gold ? ng : 0, opts);
    if (ctx) gr_reset(c);
    else grader_ctx_free(c);
    return v;
}

o1p_int grader_normalize(grader_ctx *ctx, const char *s, o1p_int n, char *out, o1p_int cap) {
    if (n < 0 || n > GRADER_NORMALIZE_MAX_LEN) return -1;
    grader_ctx *c = ctx ? ctx : grader_ctx_new();
    if (!c) return -1;
    o1p_int len = -1, m;
    char *r = gr_normalize(c, s, n, &m);
    if (r && m < cap) {
        memcpy(out, r, (size_t)m);
        out[m] = '\0';
        len = m;
    }
    if (ctx) gr_reset(c);
    else grader_ctx_free(c);
    return len;
}

int grader_compare_many(o1p_int S, const char *const *pred, const o1p_int *plen,
                        const char *const *gold, const o1p_int *glen, const int *modes, int nmodes,
                        const grader_opts *opts, int nthreads, int8_t *verdict, uint8_t *found) {
    grader_opts def;
    if (!opts) {
        grader_opts_default(&def);
        opts = &def;
    }
    int failed = 0;
    if (nthreads < 1) nthreads = 1;
    (void)nthreads;
    O1P_OMP(parallel num_threads(nthreads) reduction(| : failed))
    {
        grader_ctx *c = grader_ctx_new();
        char *buf = NULL;
        o1p_int bufcap = 0;
        if (!c) failed = 1;
        /* answers differ a lot in cost: hand them out in small chunks */
        O1P_OMP(for schedule(dynamic, 8))
        for (o1p_int i = 0; i < S; i++) {
            if (failed) {
                verdict[i] = GRADER_UNKNOWN;
                continue;
            }
            const char *p = pred[i];
            o1p_int np = plen[i];
            int ok = p != NULL;
            if (ok && nmodes > 0) {
                if (np + 1 > bufcap) {
                    free(buf);
                    bufcap = np + 1 > 4096 ? np + 1 : 4096;
                    buf = (char *)malloc((size_t)bufcap);
                    if (!buf) {
                        bufcap = 0;
                        failed = 1;
                        verdict[i] = GRADER_UNKNOWN;
                        continue;
                    }
                }
                ok = grader_extract(p, np, modes, nmodes, buf, &np);
                p = buf;
            }
            if (found) found[i] = (uint8_t)ok;
            verdict[i] = ok ? (int8_t)grader_compare(c, p, np, gold[i], glen[i], opts) : GRADER_NOT_EQUAL;
        }
        free(buf);
        grader_ctx_free(c);
    }
    return failed ? O1P_ENOMEM : O1P_OK;
}
