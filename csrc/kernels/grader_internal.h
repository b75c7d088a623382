/* grader_internal.h: types shared by the grader's C files (not part of the
 * contract in grader.h): the arena, exact big integers and rationals, the
 * value type of the evaluator, tokens, the expression tree and the parsed
 * answer structure. */
#ifndef O1P_GRADER_INTERNAL_H
#define O1P_GRADER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "grader.h"

/* ---- limits (every one of them turns into UNKNOWN, never a crash) ------- */
#define GR_MAX_LIMBS 512          /* 16384-bit integers in arithmetic */
#define GR_ARENA_LIMIT (256u << 20) /* bytes of scratch per comparison */
/* grader_normalize's documented input limit fits the arena (gr_normalize:
 * blocks of 4m + 16 and at most 4m + 32 bytes, each rounded up to 8) */
typedef char gr_normalize_limit_fits_arena[8 * (uint64_t)GRADER_NORMALIZE_MAX_LEN + 80 <= GR_ARENA_LIMIT ? 1 : -1];
#define GR_MAX_PARSE 16384        /* longest normalised answer that is parsed */
#define GR_MAX_DEPTH 400          /* parser recursion frames (about 80 nestings) */
#define GR_MAX_VARS 16            /* distinct variables in one comparison */
#define GR_MAX_ITEMS 256          /* elements of an order-insensitive list */
#define GR_NPOINTS 6              /* random points for expressions in variables */

/* ---- arena: bump allocation, reset after each comparison --------------- */
typedef struct gr_block {
    struct gr_block *next;
    size_t cap, used;
    uint64_t data[]; /* allocations are rounded to 8 bytes: nothing needs more */
} gr_block;

struct grader_ctx {
    gr_block *head;
    size_t total;
    int err;      /* set on out-of-memory or an exceeded limit */
};

void *gr_alloc(grader_ctx *c, size_t n);
void gr_reset(grader_ctx *c);

/* ---- big integers (sign-magnitude, 32-bit limbs, little endian) -------- */
typedef struct {
    uint32_t *d;
    int32_t n;   /* limbs in use; 0 means zero */
    int32_t neg; /* 1 if negative (never for zero) */
} gr_big;

gr_big gr_big_from_i64(grader_ctx *c, int64_t v);
gr_big gr_big_from_dec(grader_ctx *c, const char *s, o1p_int len); /* digits only */
int gr_big_cmp(gr_big a, gr_big b);
int gr_big_cmp_abs(gr_big a, gr_big b);
gr_big gr_big_add(grader_ctx *c, gr_big a, gr_big b);
gr_big gr_big_sub(grader_ctx *c, gr_big a, gr_big b);
gr_big gr_big_mul(grader_ctx *c, gr_big a, gr_big b);
/* truncating division; b must be nonzero */
void gr_big_divmod(grader_ctx *c, gr_big a, gr_big b, gr_big *q, gr_big *r);
gr_big gr_big_gcd(grader_ctx *c, gr_big a, gr_big b);
gr_big gr_big_pow(grader_ctx *c, gr_big a, uint64_t e);
/* 1 and *root = a^(1/k) when a >= 0 is a perfect k-th power, else 0 */
int gr_big_iroot(grader_ctx *c, gr_big a, unsigned k, gr_big *root);
/* a = m * 2^e with m in [0.5, 1) (m = 0 for zero) */
double gr_big_frexp(gr_big a, long *e);
int gr_big_fits_i64(gr_big a, int64_t *v);
static inline int gr_big_is_zero(gr_big a) { return a.n == 0; }
static inline gr_big gr_big_neg(gr_big a) {
    if (a.n) a.neg = !a.neg;
    return a;
}

/* ---- rationals: den > 0, gcd(num, den) = 1 ------------------------------ */
typedef struct {
    gr_big num, den;
} gr_rat;

gr_rat gr_rat_from_i64(grader_ctx *c, int64_t v);
gr_rat gr_rat_make(grader_ctx *c, gr_big num, gr_big den); /* reduces; den != 0 */
/* exact value of a decimal literal "12.50", ".5", "3e-4" (digits, '.', e/E) */
int gr_rat_from_decimal(grader_ctx *c, const char *s, o1p_int len, gr_rat *out);
gr_rat gr_rat_add(grader_ctx *c, gr_rat a, gr_rat b);
gr_rat gr_rat_sub(grader_ctx *c, gr_rat a, gr_rat b);
gr_rat gr_rat_mul(grader_ctx *c, gr_rat a, gr_rat b);
gr_rat gr_rat_div(grader_ctx *c, gr_rat a, gr_rat b); /* b != 0 */
int gr_rat_cmp(gr_rat a, gr_rat b);
double gr_rat_to_double(gr_rat a);
static inline int gr_rat_is_zero(gr_rat a) { return a.num.n == 0; }
static inline int gr_rat_is_int(gr_rat a) { return a.den.n == 1 && a.den.d[0] == 1; }
static inline gr_rat gr_rat_neg(gr_rat a) {
    a.num = gr_big_neg(a.num);
    return a;
}
/* 1 when the decimal expansion terminates (den = 2^a 5^b) */
int gr_rat_terminates(grader_ctx *c, gr_rat a);

/* ---- normaliser ---------------------------------------------------------- */
/* Normalised answer (NUL-terminated, in the arena); NULL on out of memory. */
char *gr_normalize(grader_ctx *c, const char *s, o1p_int n, o1p_int *out_len);

/* ---- tokens --------------------------------------------------------------- */
enum {
    T_END = 0,
    T_NUM,     /* digits [. digits] [e[+-]digits] */
    T_BASENUM, /* digits _ digits  (a number written in another base) */
    T_IDENT,   /* one letter, with its subscript if any */
    T_CMD,     /* \name, or a function word written without backslash */
    T_OP,      /* one ASCII punctuation character: sub = the char */
    T_ROWSEP,  /* \\ */
    T_LSET,    /* \{ */
    T_RSET,    /* \} */
    T_BEGIN,   /* \begin{env} */
    T_ENDENV,  /* \end{env} */
    T_BAD      /* anything the parser does not know (non-ASCII byte, ...) */
};

typedef struct {
    int type;
    int sub;          /* T_OP: the character; T_CMD: command id (GR_C_*) */
    int space_before; /* whitespace precedes this token */
    o1p_int pos, len; /* bytes in the normalised string */
    o1p_int spos, slen; /* T_IDENT subscript / T_BASENUM base / env name (slen 0: none) */
    o1p_int end;        /* index after the token (subscript included) */
} gr_tok;

/* ---- expression tree -------------------------------------------------- */
enum {
    N_NUM, N_BASENUM, N_VAR, N_PI, N_E, N_I, N_INF,
    N_SUM,  /* children a, a->next, ...; flag NEGATE on a child subtracts it */
    N_PROD, /* children; flag NEGATE on a child divides by it */
    N_NEG, N_POW, N_SQRT, N_ROOT, N_FUNC, N_LOG, N_FACT, N_ABS, N_FLOOR, N_CEIL, N_BINOM,
    N_PM    /* a +- b (a < 0: +- b); the sign is chosen at evaluation */
};
enum { NF_NEGATE = 1, NF_DECIMAL = 2, NF_PAREN = 4, NF_FRAC = 8 };

typedef struct {
    uint8_t op, flags;
    int16_t fn;       /* N_FUNC: function id */
    int32_t a, b;     /* children (node indices) or -1 */
    int32_t next;     /* next sibling in a SUM/PROD list, -1 at the end */
    o1p_int pos, len; /* N_NUM / N_BASENUM literal (N_BASENUM: digits) */
    o1p_int bpos, blen; /* N_BASENUM: base digits */
} gr_node;

/* ---- parsed answers ------------------------------------------------------ */
enum {
    IT_EXPR, IT_TEXT, IT_LIST, IT_TUPLE, IT_SET, IT_MATRIX, IT_UNION, IT_REL, IT_EMPTY
};
/* relation operators of IT_REL */
enum { R_EQ, R_LT, R_LE, R_GT, R_GE, R_NE };

typedef struct gr_item {
    int kind;
    char open, close;      /* IT_TUPLE brackets */
    int n;                 /* children */
    struct gr_item **el;
    int rows, cols;        /* IT_MATRIX (el is rows*cols, row-major) */
    int root;              /* IT_EXPR: tree root */
    int pm;                /* IT_EXPR: 0 no +-, else the sign chosen (+1/-1) */
    int has_pm;
    int eq_name;           /* IT_EXPR from "name = value": root of the name, or -1 */
    int eq_lo, eq_hi;      /* its tokens (parsed only when compared to an equation) */
    int *ops;              /* IT_REL: n-1 operators between the n sides in el */
    const char *text;      /* IT_TEXT: canonical text */
    o1p_int tlen;
    int mathy;             /* IT_TEXT: looked like math the parser could not read */
} gr_item;

/* One side of a comparison: its normalised text, tokens and tree. */
typedef struct {
    const char *s;
    o1p_int n;
    gr_tok *tok;
    int ntok;
    gr_node *node;
    int nnode, cap;
} gr_side;

/* Variables shared by both sides of a comparison (same name, same value). */
typedef struct {
    int n;
    const char *name[GR_MAX_VARS], *sub[GR_MAX_VARS]; /* letter or \greek, subscript */
    o1p_int len[GR_MAX_VARS], slen[GR_MAX_VARS];
} gr_vars;

/* Tokens of sd->s (fills sd->tok, sd->ntok and allocates sd->node). Returns
 * 0 on out of memory. */
int gr_tokenize(grader_ctx *c, gr_side *sd);
/* Parse tokens [lo, hi) as one expression; returns its root or -1. */
int gr_parse_expr(grader_ctx *c, gr_side *sd, gr_vars *vars, int lo, int hi);
/* Command ids of T_CMD tokens that the structure parser needs to see. */
enum {
    GR_C_OTHER = 0, GR_C_FRAC, GR_C_SQRT, GR_C_PI, GR_C_INFTY, GR_C_CDOT, GR_C_DIV, GR_C_PM,
    GR_C_MP, GR_C_LE, GR_C_GE, GR_C_NE, GR_C_APPROX, GR_C_IN, GR_C_CUP, GR_C_BINOM, GR_C_LFLOOR,
    GR_C_RFLOOR, GR_C_LCEIL, GR_C_RCEIL, GR_C_FUNC, GR_C_LOG, GR_C_EQUIV, GR_C_TO, GR_C_CAP,
    GR_C_DOTS, GR_C_EMPTYSET
};

/* ---- values ----------------------------------------------------------- */
enum { V_EXACT = 1, V_FLOAT = 2, V_BAD = 0 };
enum { VF_DECIMAL = 1, VF_INF = 2 };

typedef struct {
    int kind;        /* V_EXACT (re, im valid, fre/fim too), V_FLOAT, V_BAD */
    unsigned flags;  /* VF_DECIMAL: a decimal literal took part */
    gr_rat re, im;
    double fre, fim;
} gr_val;

/* Value of the tree at `root` with variable values `point` (exact rationals,
 * one per variable), choosing `pm` (+1/-1) for every +-. */
gr_val gr_eval(grader_ctx *c, const gr_side *sd, int root, const gr_rat *point, int pm);
/* variable values of point k (deterministic, distinct, "random-looking") */
void gr_point(grader_ctx *c, const gr_vars *v, int k, gr_rat *out);

/* Compare two values: GRADER_EQUAL / NOT_EQUAL / UNKNOWN. */
int gr_compare_values(grader_ctx *c, gr_val a, gr_val b, double rtol);

#endif /* O1P_GRADER_INTERNAL_H */
