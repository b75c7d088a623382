/* grader_number.c: the grader's scratch arena and its exact numbers: big
 * integers (sign-magnitude, 32-bit limbs) and reduced rationals. Numbers grow
 * as needed up to GR_MAX_LIMBS limbs; past that, or when memory runs out,
 * ctx->err is set and the comparison answers UNKNOWN: no silent overflow. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "grader_internal.h"

/* ---- arena -------------------------------------------------------------- */

#define GR_BLOCK_MIN (64u << 10)

void *gr_alloc(grader_ctx *c, size_t n) {
    n = (n + 7u) & ~(size_t)7u;
    if (n == 0) n = 8;
    gr_block *b = c->head;
    if (b == NULL || b->cap - b->used < n) {
        size_t cap = n > GR_BLOCK_MIN ? n : GR_BLOCK_MIN;
        if (b != NULL && b->cap * 2 > cap && b->cap * 2 <= (16u << 20)) cap = b->cap * 2;
        if (c->total + cap > GR_ARENA_LIMIT) {
            c->err = 1;
            return NULL;
        }
        gr_block *nb = (gr_block *)malloc(sizeof(gr_block) + cap);
        if (nb == NULL) {
            c->err = 1;
            return NULL;
        }
        nb->next = b;
        nb->cap = cap;
        nb->used = 0;
        c->head = nb;
        c->total += cap;
        b = nb;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    return p;
}

/* Keep the most recent block (usually big enough for the next comparison),
 * free the others. */
void gr_reset(grader_ctx *c) {
    gr_block *b = c->head;
    if (b == NULL) {
        c->err = 0;
        return;
    }
    gr_block *rest = b->next;
    while (rest) {
        gr_block *nx = rest->next;
        free(rest);
        rest = nx;
    }
    b->next = NULL;
    b->used = 0;
    c->total = b->cap;
    c->err = 0;
}

grader_ctx *grader_ctx_new(void) {
    grader_ctx *c = (grader_ctx *)calloc(1, sizeof(grader_ctx));
    return c;
}

void grader_ctx_free(grader_ctx *c) {
    if (c == NULL) return;
    gr_block *b = c->head;
    while (b) {
        gr_block *nx = b->next;
        free(b);
        b = nx;
    }
    free(c);
}

/* ---- big integers --------------------------------------------------------- */

static const gr_big ZERO = {NULL, 0, 0};

static uint32_t *limbs(grader_ctx *c, int32_t n) {
    if (n > GR_MAX_LIMBS + 2) {
        c->err = 1;
        return NULL;
    }
    return (uint32_t *)gr_alloc(c, (size_t)(n > 0 ? n : 1) * sizeof(uint32_t));
}

static gr_big trimmed(uint32_t *d, int32_t n, int neg, grader_ctx *c) {
    while (n > 0 && d[n - 1] == 0) n--;
    if (n > GR_MAX_LIMBS) {
        c->err = 1;
        return ZERO;
    }
    gr_big r = {d, n, n ? neg : 0};
    return r;
}

gr_big gr_big_from_i64(grader_ctx *c, int64_t v) {
    uint64_t m = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    uint32_t *d = limbs(c, 2);
    if (!d) return ZERO;
    d[0] = (uint32_t)m;
    d[1] = (uint32_t)(m >> 32);
    return trimmed(d, 2, v < 0, c);
}

int gr_big_cmp_abs(gr_big a, gr_big b) {
    if (a.n != b.n) return a.n < b.n ? -1 : 1;
    for (int32_t i = a.n - 1; i >= 0; i--)
        if (a.d[i] != b.d[i]) return a.d[i] < b.d[i] ? -1 : 1;
    return 0;
}

int gr_big_cmp(gr_big a, gr_big b) {
    if (a.neg != b.neg) return a.neg ? -1 : 1;
    int r = gr_big_cmp_abs(a, b);
    return a.neg ? -r : r;
}

/* |a| + |b| */
static gr_big add_abs(grader_ctx *c, gr_big a, gr_big b, int neg) {
    if (a.n < b.n) {
        gr_big t = a;
        a = b;
        b = t;
    }
    uint32_t *d = limbs(c, a.n + 1);
    if (!d) return ZERO;
    uint64_t carry = 0;
    for (int32_t i = 0; i < a.n; i++) {
        uint64_t s = (uint64_t)a.d[i] + (i < b.n ? b.d[i] : 0) + carry;
        d[i] = (uint32_t)s;
        carry = s >> 32;
    }
    d[a.n] = (uint32_t)carry;
    return trimmed(d, a.n + 1, neg, c);
}

/* |a| - |b| for |a| >= |b| */
static gr_big sub_abs(grader_ctx *c, gr_big a, gr_big b, int neg) {
    uint32_t *d = limbs(c, a.n);
    if (!d) return ZERO;
    int64_t borrow = 0;
    for (int32_t i = 0; i < a.n; i++) {
        int64_t s = (int64_t)a.d[i] - (i < b.n ? b.d[i] : 0) - borrow;
        borrow = s < 0;
        d[i] = (uint32_t)(s + (borrow ? ((int64_t)1 << 32) : 0));
    }
    return trimmed(d, a.n, neg, c);
}

gr_big gr_big_add(grader_ctx *c, gr_big a, gr_big b) {
    if (a.n == 0) return b;
    if (b.n == 0) return a;
    if (a.neg == b.neg) return add_abs(c, a, b, a.neg);
    int r = gr_big_cmp_abs(a, b);
    if (r == 0) return ZERO;
    return r > 0 ? sub_abs(c, a, b, a.neg) : sub_abs(c, b, a, b.neg);
}

gr_big gr_big_sub(grader_ctx *c, gr_big a, gr_big b) { return gr_big_add(c, a, gr_big_neg(b)); }

gr_big gr_big_mul(grader_ctx *c, gr_big a, gr_big b) {
    if (a.n == 0 || b.n == 0) return ZERO;
    if (a.n + b.n > GR_MAX_LIMBS + 1) {
        c->err = 1;
        return ZERO;
    }
    uint32_t *d = limbs(c, a.n + b.n);
    if (!d) return ZERO;
    memset(d, 0, (size_t)(a.n + b.n) * sizeof(uint32_t));
    for (int32_t i = 0; i < a.n; i++) {
        uint64_t carry = 0, ai = a.d[i];
        for (int32_t j = 0; j < b.n; j++) {
            uint64_t t = ai * b.d[j] + d[i + j] + carry;
            d[i + j] = (uint32_t)t;
            carry = t >> 32;
        }
        d[i + b.n] = (uint32_t)carry;
    }
    return trimmed(d, a.n + b.n, a.neg != b.neg, c);
}

/* Small multiply-add in place: d[0:n] = d * m + add; returns the new length. */
static int32_t muladd_small(uint32_t *d, int32_t n, uint32_t m, uint32_t add) {
    uint64_t carry = add;
    for (int32_t i = 0; i < n; i++) {
        uint64_t t = (uint64_t)d[i] * m + carry;
        d[i] = (uint32_t)t;
        carry = t >> 32;
    }
    if (carry) d[n++] = (uint32_t)carry;
    return n;
}

gr_big gr_big_from_dec(grader_ctx *c, const char *s, o1p_int len) {
    while (len > 0 && *s == '0') {
        s++;
        len--;
    }
    if (len == 0) return ZERO;
    /* 10^9 < 2^30: each 9-digit chunk adds < 30 bits */
    o1p_int need = len / 9 * 30 / 32 + 3;
    if (need > GR_MAX_LIMBS + 1) {
        c->err = 1;
        return ZERO;
    }
    uint32_t *d = limbs(c, (int32_t)need);
    if (!d) return ZERO;
    int32_t n = 0;
    o1p_int i = 0;
    while (i < len) {
        o1p_int k = len - i < 9 ? len - i : 9;
        uint32_t chunk = 0, mul = 1;
        for (o1p_int j = 0; j < k; j++) {
            chunk = chunk * 10 + (uint32_t)(s[i + j] - '0');
            mul *= 10;
        }
        n = muladd_small(d, n, mul, chunk); /* an empty number takes chunk as its carry */
        i += k;
    }
    return trimmed(d, n, 0, c);
}

/* Knuth's algorithm D on magnitudes: q = |a| / |b|, r = |a| % |b|. */
static void divmod_abs(grader_ctx *c, gr_big a, gr_big b, gr_big *q, gr_big *r) {
    if (gr_big_cmp_abs(a, b) < 0) {
        *q = ZERO;
        *r = a;
        r->neg = 0;
        return;
    }
    int32_t m = a.n, n = b.n;
    uint32_t *qd = limbs(c, m - n + 1);
    if (!qd) {
        *q = *r = ZERO;
        return;
    }
    if (n == 1) {
        uint64_t rem = 0, v = b.d[0];
        for (int32_t i = m - 1; i >= 0; i--) {
            uint64_t cur = (rem << 32) | a.d[i];
            qd[i] = (uint32_t)(cur / v);
            rem = cur % v;
        }
        *q = trimmed(qd, m, 0, c);
        *r = gr_big_from_i64(c, (int64_t)rem);
        return;
    }
    uint32_t *un = limbs(c, m + 1), *vn = limbs(c, n);
    if (!un || !vn) {
        *q = *r = ZERO;
        return;
    }
    int s = __builtin_clz(b.d[n - 1]);
    for (int32_t i = n - 1; i > 0; i--)
        vn[i] = (b.d[i] << s) | (s ? (uint32_t)((uint64_t)b.d[i - 1] >> (32 - s)) : 0);
    vn[0] = b.d[0] << s;
    un[m] = s ? (uint32_t)((uint64_t)a.d[m - 1] >> (32 - s)) : 0;
    for (int32_t i = m - 1; i > 0; i--)
        un[i] = (a.d[i] << s) | (s ? (uint32_t)((uint64_t)a.d[i - 1] >> (32 - s)) : 0);
    un[0] = a.d[0] << s;
    const uint64_t B = (uint64_t)1 << 32;
    for (int32_t j = m - n; j >= 0; j--) {
        uint64_t num = ((uint64_t)un[j + n] << 32) | un[j + n - 1];
        uint64_t qhat = num / vn[n - 1], rhat = num % vn[n - 1];
        while (qhat >= B || qhat * vn[n - 2] > ((rhat << 32) | un[j + n - 2])) {
            qhat--;
            rhat += vn[n - 1];
            if (rhat >= B) break;
        }
        int64_t borrow = 0;
        uint64_t carry = 0;
        for (int32_t i = 0; i < n; i++) {
            uint64_t p = qhat * vn[i] + carry;
            carry = p >> 32;
            int64_t t = (int64_t)un[i + j] - borrow - (int64_t)(uint32_t)p;
            un[i + j] = (uint32_t)t;
            borrow = t < 0;
        }
        int64_t t = (int64_t)un[j + n] - borrow - (int64_t)carry;
        un[j + n] = (uint32_t)t;
        if (t < 0) { /* qhat was one too big: add back */
            qhat--;
            uint64_t cy = 0;
            for (int32_t i = 0; i < n; i++) {
                uint64_t s2 = (uint64_t)un[i + j] + vn[i] + cy;
                un[i + j] = (uint32_t)s2;
                cy = s2 >> 32;
            }
            un[j + n] = (uint32_t)((uint64_t)un[j + n] + cy);
        }
        qd[j] = (uint32_t)qhat;
    }
    uint32_t *rd = limbs(c, n);
    if (!rd) {
        *q = *r = ZERO;
        return;
    }
    for (int32_t i = 0; i < n; i++)
        rd[i] = (un[i] >> s) | (s ? (uint32_t)((uint64_t)un[i + 1] << (32 - s)) : 0);
    *q = trimmed(qd, m - n + 1, 0, c);
    *r = trimmed(rd, n, 0, c);
}

void gr_big_divmod(grader_ctx *c, gr_big a, gr_big b, gr_big *q, gr_big *r) {
    if (b.n == 0) {
        c->err = 1;
        *q = *r = ZERO;
        return;
    }
    divmod_abs(c, a, b, q, r);
    if (q->n) q->neg = a.neg != b.neg;
    if (r->n) r->neg = a.neg;
}

gr_big gr_big_gcd(grader_ctx *c, gr_big a, gr_big b) {
    a.neg = 0;
    b.neg = 0;
    /* word-sized fast path */
    int64_t x, y;
    if (gr_big_fits_i64(a, &x) && gr_big_fits_i64(b, &y)) {
        uint64_t u = (uint64_t)x, v = (uint64_t)y;
        while (v) {
            uint64_t t = u % v;
            u = v;
            v = t;
        }
        uint32_t *d = limbs(c, 2);
        if (!d) return ZERO;
        d[0] = (uint32_t)u;
        d[1] = (uint32_t)(u >> 32);
        return trimmed(d, 2, 0, c);
    }
    while (b.n && !c->err) {
        gr_big q, r;
        divmod_abs(c, a, b, &q, &r);
        a = b;
        b = r;
    }
    return a;
}

gr_big gr_big_pow(grader_ctx *c, gr_big a, uint64_t e) {
    gr_big r = gr_big_from_i64(c, 1);
    if (e == 0) return r;
    if (a.n == 0) return ZERO;
    if (a.n == 1 && a.d[0] == 1) return (a.neg && (e & 1)) ? gr_big_neg(r) : r;
    /* the result has about e * bits(a) bits: refuse early what cannot fit */
    long ea;
    gr_big_frexp(a, &ea);
    if ((double)e * (double)(ea - 1) > 32.0 * GR_MAX_LIMBS) {
        c->err = 1;
        return ZERO;
    }
    gr_big base = a;
    while (e && !c->err) {
        if (e & 1) r = gr_big_mul(c, r, base);
        e >>= 1;
        if (e) base = gr_big_mul(c, base, base);
    }
    return r;
}

int gr_big_fits_i64(gr_big a, int64_t *v) {
    if (a.n > 2) return 0;
    uint64_t m = a.n == 0 ? 0 : a.d[0] | (a.n == 2 ? (uint64_t)a.d[1] << 32 : 0);
    if (m > (uint64_t)INT64_MAX) return 0;
    *v = a.neg ? -(int64_t)m : (int64_t)m;
    return 1;
}

double gr_big_frexp(gr_big a, long *e) {
    if (a.n == 0) {
        *e = 0;
        return 0.0;
    }
    /* top three limbs carry more than the 53 bits a double keeps */
    double m = 0.0;
    int32_t lo = a.n > 3 ? a.n - 3 : 0;
    for (int32_t i = a.n - 1; i >= lo; i--) m = m * 4294967296.0 + (double)a.d[i];
    int ex;
    m = frexp(m, &ex);
    *e = (long)ex + 32L * lo;
    return a.neg ? -m : m;
}

/* Integer k-th root by Newton's method from above; exact check at the end. */
int gr_big_iroot(grader_ctx *c, gr_big a, unsigned k, gr_big *root) {
    if (a.neg) return 0;
    if (a.n == 0 || k == 1) {
        *root = a;
        return 1;
    }
    long ea;
    gr_big_frexp(a, &ea);
    /* x0 = 2^ceil(bits/k) >= the root */
    long sh = (ea + (long)k - 1) / (long)k;
    gr_big x = gr_big_pow(c, gr_big_from_i64(c, 2), (uint64_t)sh);
    gr_big kk = gr_big_from_i64(c, (int64_t)k), km1 = gr_big_from_i64(c, (int64_t)k - 1);
    for (int it = 0; it < 4000 && !c->err; it++) {
        gr_big q, r;
        gr_big xp = gr_big_pow(c, x, k - 1);
        if (xp.n == 0) return 0;
        gr_big_divmod(c, a, xp, &q, &r);
        gr_big y = gr_big_add(c, gr_big_mul(c, km1, x), q);
        gr_big_divmod(c, y, kk, &q, &r);
        if (gr_big_cmp(q, x) >= 0) break;
        x = q;
    }
    if (c->err) return 0;
    if (gr_big_cmp(gr_big_pow(c, x, k), a) != 0) return 0;
    *root = x;
    return 1;
}

/* ---- rationals ------------------------------------------------------------ */

gr_rat gr_rat_from_i64(grader_ctx *c, int64_t v) {
    gr_rat r = {gr_big_from_i64(c, v), gr_big_from_i64(c, 1)};
    return r;
}

gr_rat gr_rat_make(grader_ctx *c, gr_big num, gr_big den) {
    gr_rat r;
    if (den.n == 0) {
        c->err = 1;
        r.num = ZERO;
        r.den = gr_big_from_i64(c, 1);
        return r;
    }
    if (den.neg) {
        den = gr_big_neg(den);
        num = gr_big_neg(num);
    }
    if (num.n == 0) {
        r.num = ZERO;
        r.den = gr_big_from_i64(c, 1);
        return r;
    }
    gr_big g = gr_big_gcd(c, num, den);
    if (!(g.n == 1 && g.d[0] == 1)) {
        gr_big q, rem;
        gr_big_divmod(c, num, g, &q, &rem);
        num = q;
        gr_big_divmod(c, den, g, &q, &rem);
        den = q;
    }
    r.num = num;
    r.den = den;
    return r;
}

int gr_rat_from_decimal(grader_ctx *c, const char *s, o1p_int len, gr_rat *out) {
    /* digits of mantissa (without the point), count after the point, exponent */
    o1p_int i = 0, frac = 0;
    long ex = 0;
    int seen_point = 0, nd = 0;
    char *digits = (char *)gr_alloc(c, (size_t)len + 1);
    if (!digits) return 0;
    for (; i < len; i++) {
        char ch = s[i];
        if (ch >= '0' && ch <= '9') {
            digits[nd++] = ch;
            if (seen_point) frac++;
        } else if (ch == '.' && !seen_point) {
            seen_point = 1;
        } else {
            break;
        }
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        int eneg = 0;
        if (i < len && (s[i] == '+' || s[i] == '-')) eneg = s[i++] == '-';
        long v = 0;
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            if (v < 100000) v = v * 10 + (s[i] - '0');
        }
        ex = eneg ? -v : v;
    }
    if (nd == 0 || i != len) return 0;
    ex -= (long)frac;
    if (ex > 4000 || ex < -4000) {
        c->err = 1;
        return 0;
    }
    gr_big m = gr_big_from_dec(c, digits, nd);
    gr_big ten = gr_big_from_i64(c, 10);
    gr_big p = gr_big_pow(c, ten, (uint64_t)(ex < 0 ? -ex : ex));
    if (ex >= 0)
        *out = gr_rat_make(c, gr_big_mul(c, m, p), gr_big_from_i64(c, 1));
    else
        *out = gr_rat_make(c, m, p);
    return !c->err;
}

gr_rat gr_rat_add(grader_ctx *c, gr_rat a, gr_rat b) {
    if (gr_rat_is_int(a) && gr_rat_is_int(b)) {
        gr_rat r = {gr_big_add(c, a.num, b.num), a.den};
        return r;
    }
    return gr_rat_make(c, gr_big_add(c, gr_big_mul(c, a.num, b.den), gr_big_mul(c, b.num, a.den)),
                       gr_big_mul(c, a.den, b.den));
}

gr_rat gr_rat_sub(grader_ctx *c, gr_rat a, gr_rat b) { return gr_rat_add(c, a, gr_rat_neg(b)); }

gr_rat gr_rat_mul(grader_ctx *c, gr_rat a, gr_rat b) {
    if (gr_rat_is_int(a) && gr_rat_is_int(b)) {
        gr_rat r = {gr_big_mul(c, a.num, b.num), a.den};
        return r;
    }
    return gr_rat_make(c, gr_big_mul(c, a.num, b.num), gr_big_mul(c, a.den, b.den));
}

gr_rat gr_rat_div(grader_ctx *c, gr_rat a, gr_rat b) {
    return gr_rat_make(c, gr_big_mul(c, a.num, b.den), gr_big_mul(c, a.den, b.num));
}

int gr_rat_cmp(gr_rat a, gr_rat b) {
    /* both reduced with positive denominators: equal iff parts equal */
    if (gr_big_cmp(a.num, b.num) == 0 && gr_big_cmp(a.den, b.den) == 0) return 0;
    double x = gr_rat_to_double(a), y = gr_rat_to_double(b);
    return x < y ? -1 : (x > y ? 1 : (a.num.neg ? -1 : 1)); /* ties: any nonzero answer */
}

double gr_rat_to_double(gr_rat a) {
    long en, ed;
    double mn = gr_big_frexp(a.num, &en), md = gr_big_frexp(a.den, &ed);
    if (md == 0.0) return NAN;
    long e = en - ed;
    if (e > 2000) e = 2000; /* beyond double range either way: +-inf or 0 */
    if (e < -2000) e = -2000;
    return ldexp(mn / md, (int)e);
}

int gr_rat_terminates(grader_ctx *c, gr_rat a) {
    gr_big d = a.den, q, r;
    gr_big two = gr_big_from_i64(c, 2), five = gr_big_from_i64(c, 5);
    for (int guard = 0; guard < 40000 && !c->err; guard++) {
        if (d.n == 1 && d.d[0] == 1) return 1;
        gr_big_divmod(c, d, two, &q, &r);
        if (r.n == 0) {
            d = q;
            continue;
        }
        gr_big_divmod(c, d, five, &q, &r);
        if (r.n == 0) {
            d = q;
            continue;
        }
        return 0;
    }
    return 0;
}
