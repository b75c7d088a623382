/* model.c: parameter layout, the layer building blocks (RMSNorm, rotary
 * embedding, causal attention, SwiGLU) and the training forward/backward of
 * the Qwen2-style transformer declared in model.h. Threading: one group of
 * sequences per thread through the whole network (see model_ops.h); the LM
 * head and log-probs go through the fused kernel (fused.h) over all rows.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "fused.h"
#include "model.h"
#include "model_ops.h"
#include "vmath.h"

/* ---- layout ------------------------------------------------------------- */

static o1p_int layer_floats(const model_config *c) {
    o1p_int d = c->hidden_size, F = c->intermediate_size;
    /* ln1 + wqkv + bqkv + wo + ln2 + wgu + wdown */
    return d + 3 * d * d + 3 * d + d * d + d + 2 * F * d + F * d;
}

int model_config_check(const model_config *c) {
    const o1p_int lim = (o1p_int)1 << 24; /* keeps every product below 2^62 */
    if (c->vocab_size < 1 || c->hidden_size < 1 || c->intermediate_size < 1 ||
        c->num_layers < 1 || c->num_heads < 1 || c->max_positions < 1)
        return O1P_EVALUE;
    if (c->vocab_size > lim || c->hidden_size > lim || c->intermediate_size > lim ||
        c->num_layers > lim || c->max_positions > lim)
        return O1P_EVALUE;
    if (c->hidden_size % c->num_heads != 0 || (c->hidden_size / c->num_heads) % 2 != 0)
        return O1P_EVALUE;
    if (!(c->rms_norm_eps > 0.0f) || !isfinite(c->rms_norm_eps) || !(c->rope_theta > 0.0f) ||
        !isfinite(c->rope_theta))
        return O1P_EVALUE;
    o1p_int p, q;
    if (o1p_mul_overflow(layer_floats(c), c->num_layers, &p) ||
        o1p_mul_overflow(c->vocab_size, c->hidden_size, &q) || o1p_add_overflow(p, q, &p) ||
        o1p_add_overflow(p, c->hidden_size, &p))
        return O1P_EVALUE;
    return O1P_OK;
}

model_layer_offsets model_layer_offsets_of(const model_config *c, o1p_int l) {
    o1p_int d = c->hidden_size, F = c->intermediate_size;
    model_layer_offsets o;
    o.ln1 = c->vocab_size * d + l * layer_floats(c);
    o.wqkv = o.ln1 + d;
    o.bqkv = o.wqkv + 3 * d * d;
    o.wo = o.bqkv + 3 * d;
    o.ln2 = o.wo + d * d;
    o.wgu = o.ln2 + d;
    o.wdown = o.wgu + 2 * F * d;
    return o;
}

o1p_int model_norm_offset(const model_config *c) {
    return c->vocab_size * c->hidden_size + c->num_layers * layer_floats(c);
}

o1p_int model_num_params(const model_config *c) { return model_norm_offset(c) + c->hidden_size; }

/* ---- training arena ----------------------------------------------------- */

/* Activations of one layer kept for the backward (rows = packed tokens). */
typedef struct {
    float *rstd1, *xn1, *qkv, *lse, *att, *x_mid, *rstd2, *xn2, *gu, *act;
} layer_acts;

typedef struct {
    float *x;      /* residual stream [L+1][N,d]; x + l*N*d enters layer l */
    float *layers; /* L blocks of layer_acts, per_layer floats each */
    o1p_int per_layer;
    float *rstd_f, *xn_f, *lse_head, *ent_head, *logp;   /* final norm, LM head */
    float *dx, *dxn, *dqkv, *datt, *dgu, *dact, *glogp; /* backward scratch */
} arena_map;

/* Carve the arena (base may be NULL: only count). Returns the floats needed,
 * or -1 when that number overflows int64 (every size goes through o1p.h's
 * checked arithmetic: a wrapped size would pass the "arena large enough"
 * check with a tiny arena). */
static o1p_int arena_carve(const model_config *c, o1p_int N, float *base, arena_map *m) {
    o1p_int d = c->hidden_size, F = c->intermediate_size, L = c->num_layers, H = c->num_heads;
    o1p_int off = 0;
    int ovf = 0;
#define O1P_MUL(a, b) o1p_size_mul((a), (b), &ovf)
#define O1P_TAKE(ptr, n)                                  \
    do {                                                  \
        o1p_int n_ = (n);                                 \
        (ptr) = base && !ovf ? base + off : NULL;         \
        off = o1p_size_add(off, n_, &ovf);                \
    } while (0)
    /* the per-row widths are sums of config sizes (each <= 2^24): no overflow */
    O1P_TAKE(m->x, O1P_MUL(O1P_MUL(L + 1, N), d));
    m->per_layer = O1P_MUL(N, 1 + d + 3 * d + H + d + d + 1 + d + 2 * F + F);
    O1P_TAKE(m->layers, O1P_MUL(L, m->per_layer));
    O1P_TAKE(m->rstd_f, N);
    O1P_TAKE(m->xn_f, O1P_MUL(N, d));
    O1P_TAKE(m->lse_head, N);
    O1P_TAKE(m->ent_head, N);
    O1P_TAKE(m->logp, N);
    O1P_TAKE(m->dx, O1P_MUL(N, d));
    O1P_TAKE(m->dxn, O1P_MUL(N, d));
    O1P_TAKE(m->dqkv, O1P_MUL(N, 3 * d));
    O1P_TAKE(m->datt, O1P_MUL(N, d));
    O1P_TAKE(m->dgu, O1P_MUL(N, 2 * F));
    O1P_TAKE(m->dact, O1P_MUL(N, F));
    O1P_TAKE(m->glogp, N);
#undef O1P_TAKE
#undef O1P_MUL
    return ovf ? -1 : off;
}

static layer_acts layer_acts_of(const model_config *c, o1p_int N, const arena_map *m, o1p_int l) {
    o1p_int d = c->hidden_size, F = c->intermediate_size, H = c->num_heads;
    float *p = m->layers + l * m->per_layer;
    layer_acts a;
    a.rstd1 = p; p += N;
    a.xn1 = p; p += N * d;
    a.qkv = p; p += N * 3 * d;
    a.lse = p; p += N * H;
    a.att = p; p += N * d;
    a.x_mid = p; p += N * d;
    a.rstd2 = p; p += N;
    a.xn2 = p; p += N * d;
    a.gu = p; p += N * 2 * F;
    a.act = p;
    return a;
}

o1p_int model_arena_floats(const model_config *c, o1p_int N, int threads) {
    arena_map m;
    int ovf = 0;
    o1p_int extra = threads > 1 ? o1p_size_mul(threads - 1, model_num_params(c), &ovf) : 0;
    o1p_int need = arena_carve(c, N, NULL, &m);
    if (need < 0) return -1;
    need = o1p_size_add(need, extra, &ovf);
    return ovf ? -1 : need;
}

/* ---- row kernels (serial; target clones pick AVX-512/AVX2) --------------- */

/* sum x[i] y[i] in double with 8 independent partial sums (vectorisable,
 * fixed order). */
O1P_INLINE double dot_d(const float *x, const float *y, o1p_int n) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    o1p_int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += (double)x[i + j] * (double)y[i + j];
    double tail = 0;
    for (; i < n; i++) tail += (double)x[i] * (double)y[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

/* sum x[i]^2, same order as dot_d */
O1P_INLINE double sumsq_d(const float *x, o1p_int n) { return dot_d(x, x, n); }

O1P_INLINE double sum_d(const float *x, o1p_int n) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    o1p_int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += (double)x[i + j];
    double tail = 0;
    for (; i < n; i++) tail += (double)x[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

O1P_TARGET_CLONES
void model_rmsnorm_rows(o1p_int n, o1p_int d, const float *x, const float *w, float eps, float *y,
                        float *rstd) {
    for (o1p_int i = 0; i < n; i++) {
        const float *xr = x + i * d;
        float *yr = y + i * d;
        /* as HF Qwen2RMSNorm: w * (x * rsqrt(mean(x^2) + eps)); the mean in double */
        float r = (float)(1.0 / sqrt(sumsq_d(xr, d) / (double)d + (double)eps));
        for (o1p_int j = 0; j < d; j++) yr[j] = w[j] * (xr[j] * r);
        if (rstd) rstd[i] = r;
    }
}

/* Backward of y = w x r with r = (mean(x^2) + eps)^(-1/2), g = w dy:
 *   dx = r g - x r^3 (g . x) / d     (ACCUMULATES into dx[n,d])
 *   dw = sum_rows dy x r              (ACCUMULATES into dw[d], or overwrites it
 *                                      with assign; double sums)
 * acc: d doubles of scratch; g: d floats of scratch. */
O1P_TARGET_CLONES
static void rmsnorm_backward_rows(o1p_int n, o1p_int d, const float *x, const float *rstd,
                                  const float *w, const float *dy, float *dx, float *dw, int assign,
                                  double *acc, float *g) {
    for (o1p_int j = 0; j < d; j++) acc[j] = 0.0;
    for (o1p_int i = 0; i < n; i++) {
        const float *xr = x + i * d, *dyr = dy + i * d;
        float *dxr = dx + i * d, r = rstd[i];
        for (o1p_int j = 0; j < d; j++) {
            g[j] = w[j] * dyr[j];
            acc[j] += (double)dyr[j] * (double)(xr[j] * r);
        }
        float cf = (float)(dot_d(g, xr, d) * (double)r * (double)r * (double)r / (double)d);
        for (o1p_int j = 0; j < d; j++) dxr[j] += r * g[j] - cf * xr[j];
    }
    for (o1p_int j = 0; j < d; j++) dw[j] = (assign ? 0.0f : dw[j]) + (float)acc[j];
}

/* out[j] += sum over rows of a[n, C] (leading dim ld), double sums; with
 * assign, out[j] = the sum. */
O1P_TARGET_CLONES
static void colsum_rows(o1p_int n, o1p_int C, o1p_int ld, const float *a, float *out, int assign,
                        double *acc) {
    for (o1p_int j = 0; j < C; j++) acc[j] = 0.0;
    for (o1p_int i = 0; i < n; i++) {
        const float *ar = a + i * ld;
        for (o1p_int j = 0; j < C; j++) acc[j] += (double)ar[j];
    }
    for (o1p_int j = 0; j < C; j++) out[j] = (assign ? 0.0f : out[j]) + (float)acc[j];
}

/* ---- rotary embedding --------------------------------------------------- */

int model_rope_init(model_rope *r, o1p_int n_pos, o1p_int D, float theta) {
    r->n_pos = n_pos;
    r->half = D / 2;
    size_t n = (size_t)(n_pos > 0 ? n_pos : 1) * (size_t)r->half;
    r->cos = (float *)malloc(n * sizeof(float));
    r->sin = (float *)malloc(n * sizeof(float));
    if (!r->cos || !r->sin) {
        model_rope_free(r);
        return O1P_ENOMEM;
    }
    for (o1p_int i = 0; i < r->half; i++) {
        /* HF: inv_freq = 1 / theta^(arange(0, D, 2) / D) in float32, and the
         * angle pos * inv_freq is a float32 product; cos/sin of that float. */
        float expo = (float)(2 * i) / (float)D;
        float inv_freq = 1.0f / powf(theta, expo);
        for (o1p_int p = 0; p < n_pos; p++) {
            float ang = (float)p * inv_freq;
            r->cos[p * r->half + i] = (float)cos((double)ang);
            r->sin[p * r->half + i] = (float)sin((double)ang);
        }
    }
    return O1P_OK;
}

void model_rope_free(model_rope *r) {
    free(r->cos);
    free(r->sin);
    r->cos = r->sin = NULL;
}

O1P_TARGET_CLONES
void model_bias_rope_rows(o1p_int n, o1p_int d, o1p_int H, float *qkv, const float *bias,
                          const int64_t *pos, const model_rope *rope) {
    o1p_int D = d / H, half = D / 2;
    for (o1p_int i = 0; i < n; i++) {
        float *row = qkv + i * 3 * d;
        const float *c = rope->cos + pos[i] * half, *s = rope->sin + pos[i] * half;
        for (o1p_int j = 0; j < 3 * d; j++) row[j] += bias[j];
        for (o1p_int h = 0; h < 2 * H; h++) { /* H query heads then H key heads */
            float *x1 = row + h * D, *x2 = x1 + half;
            for (o1p_int k = 0; k < half; k++) {
                float a = x1[k], b = x2[k];
                x1[k] = a * c[k] - b * s[k];
                x2[k] = b * c[k] + a * s[k];
            }
        }
    }
}

/* The transpose of the rotation (rotation by -angle) on dq and dk. */
O1P_TARGET_CLONES
static void rope_backward_rows(o1p_int n, o1p_int d, o1p_int H, float *dqkv, const int64_t *pos,
                               const model_rope *rope) {
    o1p_int D = d / H, half = D / 2;
    for (o1p_int i = 0; i < n; i++) {
        float *row = dqkv + i * 3 * d;
        const float *c = rope->cos + pos[i] * half, *s = rope->sin + pos[i] * half;
        for (o1p_int h = 0; h < 2 * H; h++) {
            float *x1 = row + h * D, *x2 = x1 + half;
            for (o1p_int k = 0; k < half; k++) {
                float a = x1[k], b = x2[k];
                x1[k] = a * c[k] + b * s[k];
                x2[k] = b * c[k] - a * s[k];
            }
        }
    }
}

/* ---- SwiGLU ------------------------------------------------------------- */

O1P_TARGET_CLONES
void model_swiglu_rows(o1p_int n, o1p_int F, const float *gu, float *act) {
    for (o1p_int i = 0; i < n; i++) {
        const float *g = gu + i * 2 * F, *u = g + F;
        float *a = act + i * F;
        for (o1p_int j = 0; j < F; j++) a[j] = g[j] / (1.0f + o1p_expf(-g[j])) * u[j];
    }
}

/* act = silu(g) u with s = sigmoid(g): d act/d u = g s, d act/d g = u s (1 + g (1 - s)). */
O1P_TARGET_CLONES
static void swiglu_backward_rows(o1p_int n, o1p_int F, const float *gu, const float *dact,
                                 float *dgu) {
    for (o1p_int i = 0; i < n; i++) {
        const float *g = gu + i * 2 * F, *u = g + F, *da = dact + i * F;
        float *dg = dgu + i * 2 * F, *du = dg + F;
        for (o1p_int j = 0; j < F; j++) {
            float s = 1.0f / (1.0f + o1p_expf(-g[j]));
            du[j] = da[j] * g[j] * s;
            dg[j] = da[j] * u[j] * s * (1.0f + g[j] * (1.0f - s));
        }
    }
}

/* ---- attention ---------------------------------------------------------- */

/* Softmax of s[0..nvalid) in place (entries nvalid..nk set to 0); returns lse. */
O1P_TARGET_CLONES
static float softmax_row(float *s, o1p_int nvalid, o1p_int nk) {
    float m = s[0];
    for (o1p_int j = 1; j < nvalid; j++) m = s[j] > m ? s[j] : m;
    for (o1p_int j = 0; j < nvalid; j++) s[j] = o1p_expf(s[j] - m);
    double z = sum_d(s, nvalid);
    float inv = (float)(1.0 / z);
    for (o1p_int j = 0; j < nvalid; j++) s[j] *= inv;
    for (o1p_int j = nvalid; j < nk; j++) s[j] = 0.0f;
    return m + (float)log(z);
}

/* P = exp(s - lse) on the valid part (recomputed probabilities), zero after. */
O1P_TARGET_CLONES
static void probs_row(float *s, float lse, o1p_int nvalid, o1p_int nk) {
    for (o1p_int j = 0; j < nvalid; j++) s[j] = o1p_expf(s[j] - lse);
    for (o1p_int j = nvalid; j < nk; j++) s[j] = 0.0f;
}

/* dS = P (dP - D) where D = dO . O = sum_j P_j dP_j. */
O1P_TARGET_CLONES
static void dsoftmax_row(const float *p, float *dp, float Dsum, o1p_int nvalid, o1p_int nk) {
    for (o1p_int j = 0; j < nvalid; j++) dp[j] = p[j] * (dp[j] - Dsum);
    for (o1p_int j = nvalid; j < nk; j++) dp[j] = 0.0f;
}

/* Query blocks of O1P_ATTN_QBLOCK rows: block i0..i1 only needs keys
 * 0..start+i1, which skips most of the masked upper triangle while keeping
 * the sgemms reasonably large. */
void model_attention_head(o1p_int n, o1p_int start, o1p_int D, const float *q, o1p_int ldq,
                          const float *k, const float *v, o1p_int ldkv, float *out, o1p_int ldo,
                          float *lse, float *S) {
    float scale = (float)(1.0 / sqrt((double)D));
    if (n == 1) {
        /* one query (decoding): two matrix-vector products, which read the
         * cached keys and values once instead of packing them as sgemm does */
        o1p_int nk = start + 1;
        O1P_SGEMV(0, nk, D, scale, k, ldkv, q, 1, 0.0f, S, 1);
        float l = softmax_row(S, nk, nk);
        if (lse) lse[0] = l;
        O1P_SGEMV(1, nk, D, 1.0f, v, ldkv, S, 1, 0.0f, out, 1);
        return;
    }
    for (o1p_int i0 = 0; i0 < n; i0 += O1P_ATTN_QBLOCK) {
        o1p_int i1 = O1P_MIN(n, i0 + O1P_ATTN_QBLOCK), m = i1 - i0, nk = start + i1;
        O1P_SGEMM(0, 1, m, nk, D, scale, q + i0 * ldq, ldq, k, ldkv, 0.0f, S, nk);
        for (o1p_int r = 0; r < m; r++) {
            float l = softmax_row(S + r * nk, start + i0 + r + 1, nk);
            if (lse) lse[i0 + r] = l;
        }
        O1P_SGEMM(0, 0, m, D, nk, 1.0f, S, nk, v, ldkv, 0.0f, out + i0 * ldo, ldo);
    }
}

/* Backward of one (sequence, head) with start = 0 (training). q, k, v are
 * the rotated projections (leading dim ldqkv); o the attention output and dO
 * its gradient (ldo); dq, dk, dv overwritten (ldqkv). S, dP: scratch of
 * O1P_ATTN_QBLOCK * n floats each. */
static void attention_head_backward(o1p_int n, o1p_int D, const float *q, const float *k,
                                    const float *v, o1p_int ldqkv, const float *o, const float *dO,
                                    o1p_int ldo, const float *lse, float *dq, float *dk, float *dv,
                                    float *S, float *dP) {
    float scale = (float)(1.0 / sqrt((double)D));
    for (o1p_int i = 0; i < n; i++) {
        memset(dk + i * ldqkv, 0, (size_t)D * sizeof(float));
        memset(dv + i * ldqkv, 0, (size_t)D * sizeof(float));
    }
    for (o1p_int i0 = 0; i0 < n; i0 += O1P_ATTN_QBLOCK) {
        o1p_int i1 = O1P_MIN(n, i0 + O1P_ATTN_QBLOCK), m = i1 - i0, nk = i1;
        O1P_SGEMM(0, 1, m, nk, D, scale, q + i0 * ldqkv, ldqkv, k, ldqkv, 0.0f, S, nk);
        for (o1p_int r = 0; r < m; r++) probs_row(S + r * nk, lse[i0 + r], i0 + r + 1, nk);
        /* dV[0:nk] += P^T dO_blk */
        O1P_SGEMM(1, 0, nk, D, m, 1.0f, S, nk, dO + i0 * ldo, ldo, 1.0f, dv, ldqkv);
        /* dP = dO_blk V^T */
        O1P_SGEMM(0, 1, m, nk, D, 1.0f, dO + i0 * ldo, ldo, v, ldqkv, 0.0f, dP, nk);
        for (o1p_int r = 0; r < m; r++) {
            float Dsum = (float)dot_d(dO + (i0 + r) * ldo, o + (i0 + r) * ldo, D);
            dsoftmax_row(S + r * nk, dP + r * nk, Dsum, i0 + r + 1, nk);
        }
        /* scores were scale * q.k: dQ_blk = scale dS K, dK += scale dS^T Q_blk */
        O1P_SGEMM(0, 0, m, D, nk, scale, dP, nk, k, ldqkv, 0.0f, dq + i0 * ldqkv, ldqkv);
        O1P_SGEMM(1, 0, nk, D, m, scale, dP, nk, q + i0 * ldqkv, ldqkv, 1.0f, dk, ldqkv);
    }
}

/* ---- work split --------------------------------------------------------- */

int model_partition(const model_config *c, o1p_int nseq, const o1p_int *n, const o1p_int *start,
                    int nt, o1p_int *cut) {
    o1p_int d = c->hidden_size, F = c->intermediate_size;
    /* cost of a sequence ~ flops per layer: matmuls 2 n (4d^2 + 3dF) and
     * attention about 4 n (start + n/2) d */
    double total = 0.0, row = 2.0 * (double)d * (4.0 * (double)d + 3.0 * (double)F);
    for (o1p_int b = 0; b < nseq; b++) {
        double s = start ? (double)start[b] : 0.0;
        total += (double)n[b] * (row + 4.0 * (s + 0.5 * (double)n[b]) * (double)d);
    }
    cut[0] = 0;
    if (nt < 2 || nseq < 2 || total <= 0.0) {
        cut[1] = nseq;
        return 1;
    }
    int g = 0;
    double acc = 0.0, worst = 0.0, group = 0.0;
    for (o1p_int b = 0; b < nseq; b++) {
        double s = start ? (double)start[b] : 0.0;
        double cb = (double)n[b] * (row + 4.0 * (s + 0.5 * (double)n[b]) * (double)d);
        acc += cb;
        group += cb;
        /* close the group once it reaches its share (keep >= 1 sequence per
         * remaining group) */
        if (g < nt - 1 && acc >= total * (double)(g + 1) / (double)nt && nseq - (b + 1) >= 1) {
            cut[++g] = b + 1;
            worst = O1P_MAX(worst, group);
            group = 0.0;
        }
    }
    cut[++g] = nseq;
    worst = O1P_MAX(worst, group);
    /* a split where one thread does most of the work is slower than one
     * thread with multi-threaded BLAS */
    if (g < 2 || total / ((double)g * worst) < 0.6) {
        cut[1] = nseq;
        return 1;
    }
    return g;
}

/* ---- forward / backward ------------------------------------------------- */

/* Packed view of a right-padded batch. */
typedef struct {
    o1p_int B, N, maxlen;
    o1p_int *off, *len;       /* [B+1], [B] */
    int64_t *ids, *tgt, *pos; /* [N] */
} packed_batch;

static void packed_free(packed_batch *p) {
    free(p->off);
    free(p->len);
    free(p->ids);
    free(p->tgt);
    free(p->pos);
}

/* Re-checks what it copies (lengths within [0, T], ids within [0, V): they
 * size the packed rows and index the embedding), so the kernel never trusts
 * a separate validation pass over memory it does not own. */
static int pack_batch(o1p_int B, o1p_int T, o1p_int V, const int64_t *ids, const int64_t *lengths,
                      const int64_t *targets, packed_batch *p) {
    memset(p, 0, sizeof *p);
    p->B = B;
    p->off = (o1p_int *)malloc((size_t)(B + 1) * sizeof(o1p_int));
    p->len = (o1p_int *)malloc((size_t)(B > 0 ? B : 1) * sizeof(o1p_int));
    if (!p->off || !p->len) return O1P_ENOMEM;
    p->off[0] = 0;
    for (o1p_int b = 0; b < B; b++) {
        o1p_int l = lengths[b];
        if (l < 0 || l > T) return O1P_EVALUE;
        p->len[b] = l;
        p->off[b + 1] = p->off[b] + l;
        p->maxlen = O1P_MAX(p->maxlen, l);
    }
    p->N = p->off[B];
    size_t n = (size_t)(p->N > 0 ? p->N : 1);
    p->ids = (int64_t *)malloc(n * sizeof(int64_t));
    p->tgt = (int64_t *)malloc(n * sizeof(int64_t));
    p->pos = (int64_t *)malloc(n * sizeof(int64_t));
    if (!p->ids || !p->tgt || !p->pos) return O1P_ENOMEM;
    for (o1p_int b = 0; b < B; b++) {
        for (o1p_int t = 0; t < p->len[b]; t++) {
            o1p_int r = p->off[b] + t;
            int64_t id = ids[b * T + t];
            if (id < 0 || id >= V) return O1P_EINDEX;
            p->ids[r] = id;
            p->tgt[r] = targets ? targets[b * T + t] : 0;
            p->pos[r] = t;
        }
    }
    return O1P_OK;
}

/* What every group of a forward/backward shares. */
typedef struct {
    const model_config *c;
    const float *params;
    const packed_batch *pb;
    const model_rope *rope;
    const arena_map *m;
} model_run;

/* Forward of sequences b0..b1 (rows off[b0]..off[b1]) through every layer
 * and the final norm. S: attention scratch of O1P_ATTN_QBLOCK * maxlen. */
static void group_forward(const model_run *R, o1p_int b0, o1p_int b1, float *S) {
    const model_config *c = R->c;
    const packed_batch *pb = R->pb;
    const arena_map *m = R->m;
    const float *P = R->params;
    o1p_int d = c->hidden_size, F = c->intermediate_size, H = c->num_heads, D = d / H;
    o1p_int N = pb->N, r0 = pb->off[b0], n = pb->off[b1] - r0;
    if (n == 0) return;
    for (o1p_int r = r0; r < r0 + n; r++)
        memcpy(m->x + r * d, P + pb->ids[r] * d, (size_t)d * sizeof(float));
    for (o1p_int l = 0; l < c->num_layers; l++) {
        model_layer_offsets o = model_layer_offsets_of(c, l);
        layer_acts a = layer_acts_of(c, N, m, l);
        const float *x_in = m->x + l * N * d + r0 * d;
        float *x_out = m->x + (l + 1) * N * d + r0 * d;
        float *xn1 = a.xn1 + r0 * d, *qkv = a.qkv + r0 * 3 * d, *att = a.att + r0 * d;
        float *x_mid = a.x_mid + r0 * d, *xn2 = a.xn2 + r0 * d, *gu = a.gu + r0 * 2 * F;
        float *act = a.act + r0 * F;
        /* attention block: x_mid = x_in + o_proj(attn(rope(qkv(rms(x_in))))) */
        model_rmsnorm_rows(n, d, x_in, P + o.ln1, c->rms_norm_eps, xn1, a.rstd1 + r0);
        O1P_SGEMM(0, 1, n, 3 * d, d, 1.0f, xn1, d, P + o.wqkv, d, 0.0f, qkv, 3 * d);
        model_bias_rope_rows(n, d, H, qkv, P + o.bqkv, pb->pos + r0, R->rope);
        for (o1p_int b = b0; b < b1; b++) {
            o1p_int rb = pb->off[b];
            for (o1p_int h = 0; h < H && pb->len[b] > 0; h++) {
                const float *base = a.qkv + rb * 3 * d + h * D;
                model_attention_head(pb->len[b], 0, D, base, 3 * d, base + d, base + 2 * d, 3 * d,
                                     a.att + rb * d + h * D, d, a.lse + h * N + rb, S);
            }
        }
        memcpy(x_mid, x_in, (size_t)(n * d) * sizeof(float));
        O1P_SGEMM(0, 1, n, d, d, 1.0f, att, d, P + o.wo, d, 1.0f, x_mid, d);
        /* MLP block: x_out = x_mid + down(silu(gate(h)) * up(h)), h = rms(x_mid) */
        model_rmsnorm_rows(n, d, x_mid, P + o.ln2, c->rms_norm_eps, xn2, a.rstd2 + r0);
        O1P_SGEMM(0, 1, n, 2 * F, d, 1.0f, xn2, d, P + o.wgu, d, 0.0f, gu, 2 * F);
        model_swiglu_rows(n, F, gu, act);
        memcpy(x_out, x_mid, (size_t)(n * d) * sizeof(float));
        O1P_SGEMM(0, 1, n, d, F, 1.0f, act, F, P + o.wdown, F, 1.0f, x_out, d);
    }
    model_rmsnorm_rows(n, d, m->x + c->num_layers * N * d + r0 * d, P + model_norm_offset(c),
                       c->rms_norm_eps, m->xn_f + r0 * d, m->rstd_f + r0);
}

/* Backward of sequences b0..b1, from dL/d(final-norm output) in m->dxn to
 * every parameter; ACCUMULATES into G[P], or with overwrite stores into it
 * (every gradient tensor gets exactly one contribution per group, so a
 * private buffer needs no zeroing). Scratch: S (2 * QBLOCK * maxlen floats),
 * acc (3d doubles), g (d floats). */
static void group_backward(const model_run *R, o1p_int b0, o1p_int b1, float *G, int overwrite,
                           float *S, double *acc, float *g) {
    const model_config *c = R->c;
    const packed_batch *pb = R->pb;
    const arena_map *m = R->m;
    const float *P = R->params;
    o1p_int d = c->hidden_size, F = c->intermediate_size, H = c->num_heads, D = d / H;
    o1p_int N = pb->N, r0 = pb->off[b0], n = pb->off[b1] - r0, L = c->num_layers;
    if (n == 0) {
        if (overwrite) memset(G, 0, (size_t)model_num_params(c) * sizeof(float));
        return;
    }
    const float beta = overwrite ? 0.0f : 1.0f;
    size_t blk = (size_t)O1P_ATTN_QBLOCK * (size_t)pb->maxlen;
    float *dx = m->dx + r0 * d, *dxn = m->dxn + r0 * d, *dqkv = m->dqkv + r0 * 3 * d;
    float *datt = m->datt + r0 * d, *dgu = m->dgu + r0 * 2 * F, *dact = m->dact + r0 * F;
    o1p_int on = model_norm_offset(c);
    memset(dx, 0, (size_t)(n * d) * sizeof(float));
    rmsnorm_backward_rows(n, d, m->x + L * N * d + r0 * d, m->rstd_f + r0, P + on, dxn, dx, G + on,
                          overwrite, acc, g);
    for (o1p_int l = L - 1; l >= 0; l--) {
        model_layer_offsets o = model_layer_offsets_of(c, l);
        layer_acts a = layer_acts_of(c, N, m, l);
        const float *x_in = m->x + l * N * d + r0 * d;
        /* dx holds dL/dx_out; MLP block */
        O1P_SGEMM(0, 0, n, F, d, 1.0f, dx, d, P + o.wdown, F, 0.0f, dact, F);
        O1P_SGEMM(1, 0, d, F, n, 1.0f, dx, d, a.act + r0 * F, F, beta, G + o.wdown, F);
        swiglu_backward_rows(n, F, a.gu + r0 * 2 * F, dact, dgu);
        O1P_SGEMM(0, 0, n, d, 2 * F, 1.0f, dgu, 2 * F, P + o.wgu, d, 0.0f, dxn, d);
        O1P_SGEMM(1, 0, 2 * F, d, n, 1.0f, dgu, 2 * F, a.xn2 + r0 * d, d, beta, G + o.wgu, d);
        rmsnorm_backward_rows(n, d, a.x_mid + r0 * d, a.rstd2 + r0, P + o.ln2, dxn, dx, G + o.ln2,
                              overwrite, acc, g);
        /* dx holds dL/dx_mid; attention block */
        O1P_SGEMM(0, 0, n, d, d, 1.0f, dx, d, P + o.wo, d, 0.0f, datt, d);
        O1P_SGEMM(1, 0, d, d, n, 1.0f, dx, d, a.att + r0 * d, d, beta, G + o.wo, d);
        for (o1p_int b = b0; b < b1; b++) {
            o1p_int rb = pb->off[b];
            for (o1p_int h = 0; h < H && pb->len[b] > 0; h++) {
                const float *base = a.qkv + rb * 3 * d + h * D;
                float *dbase = m->dqkv + rb * 3 * d + h * D;
                attention_head_backward(pb->len[b], D, base, base + d, base + 2 * d, 3 * d,
                                        a.att + rb * d + h * D, m->datt + rb * d + h * D, d,
                                        a.lse + h * N + rb, dbase, dbase + d, dbase + 2 * d, S,
                                        S + blk);
            }
        }
        rope_backward_rows(n, d, H, dqkv, pb->pos + r0, R->rope);
        colsum_rows(n, 3 * d, 3 * d, dqkv, G + o.bqkv, overwrite, acc);
        O1P_SGEMM(0, 0, n, d, 3 * d, 1.0f, dqkv, 3 * d, P + o.wqkv, d, 0.0f, dxn, d);
        O1P_SGEMM(1, 0, 3 * d, d, n, 1.0f, dqkv, 3 * d, a.xn1 + r0 * d, d, beta, G + o.wqkv, d);
        rmsnorm_backward_rows(n, d, x_in, a.rstd1 + r0, P + o.ln1, dxn, dx, G + o.ln1, overwrite,
                              acc, g);
    }
    if (overwrite) memset(G, 0, (size_t)(c->vocab_size * d) * sizeof(float));
    for (o1p_int i = 0; i < n; i++) { /* embedding rows */
        float *ge = G + pb->ids[r0 + i] * d;
        const float *s = dx + i * d;
        for (o1p_int j = 0; j < d; j++) ge[j] += s[j];
    }
}

int model_threads_for_tokens(const model_config *c, o1p_int tokens) {
    /* matmul flops per token; a thread is worth ~32 MFLOP (~0.3 ms), well
     * above the cost of waking it even on a busy machine */
    o1p_int d = c->hidden_size, F = c->intermediate_size;
    o1p_int per_token = o1p_mul_sat(o1p_mul_sat(2 * d, 4 * d + 3 * F), c->num_layers);
    return o1p_threads_for(o1p_mul_sat(tokens, per_token), (o1p_int)1 << 25);
}

/* Groups (threads) for the model over this batch and their cuts
 * (cut[groups+1]); *serial_blas: BLAS must stay on one thread (several
 * groups, or too little work to be worth waking any thread). */
static int split_batch(const model_config *c, const packed_batch *pb, o1p_int *cut, int *serial_blas) {
    int want = model_threads_for_tokens(c, pb->N);
    int groups = model_partition(c, pb->B, pb->len, NULL, want, cut);
    *serial_blas = groups > 1 || want == 1;
    return groups;
}

int model_forward(const model_config *c, const float *params, o1p_int B, o1p_int T,
                  const int64_t *ids, const int64_t *lengths, const int64_t *targets,
                  int64_t ignore_index, float temperature, float *arena, float *logp,
                  float *entropy, float *hidden) {
    o1p_int d = c->hidden_size, H = c->num_heads, V = c->vocab_size;
    if (logp) memset(logp, 0, (size_t)(B * T) * sizeof(float));
    if (entropy) memset(entropy, 0, (size_t)(B * T) * sizeof(float));
    if (hidden) memset(hidden, 0, (size_t)(B * T * d) * sizeof(float));
    packed_batch pb;
    model_rope rope = {0, 0, NULL, NULL};
    o1p_int *cut = NULL;
    int st = pack_batch(B, T, V, ids, lengths, targets, &pb);
    if (st != O1P_OK || pb.N == 0) goto done;
    if (pb.maxlen > c->max_positions) {
        st = O1P_EVALUE;
        goto done;
    }
    st = model_rope_init(&rope, pb.maxlen, d / H, c->rope_theta);
    cut = (o1p_int *)malloc((size_t)(B + 2) * sizeof(o1p_int));
    if (st != O1P_OK || cut == NULL) {
        st = O1P_ENOMEM;
        goto done;
    }
    arena_map m;
    arena_carve(c, pb.N, arena, &m);
    model_run R = {c, params, &pb, &rope, &m};
    int serial_blas;
    int groups = split_batch(c, &pb, cut, &serial_blas);
    if (serial_blas) o1p_blas_serial_begin();
    O1P_OMP(parallel for num_threads(groups) schedule(static, 1))
    for (int gi = 0; gi < groups; gi++) {
        float *S = (float *)malloc((size_t)O1P_ATTN_QBLOCK * (size_t)pb.maxlen * sizeof(float));
        if (S == NULL) {
            O1P_OMP(atomic write)
            st = O1P_ENOMEM;
            continue;
        }
        group_forward(&R, cut[gi], cut[gi + 1], S);
        free(S);
    }
    if (serial_blas) o1p_blas_serial_end();
    if (st != O1P_OK) goto done;
    if (hidden) {
        for (o1p_int b = 0; b < B; b++)
            memcpy(hidden + b * T * d, m.xn_f + pb.off[b] * d, (size_t)(pb.len[b] * d) * sizeof(float));
    }
    if (targets) {
        /* the LM head with the tied embedding, over all rows (threaded inside) */
        st = fused_logprobs_forward(pb.N, d, V, m.xn_f, params, NULL, pb.tgt, ignore_index,
                                    temperature, m.logp, m.ent_head, m.lse_head);
        if (st != O1P_OK) goto done;
        for (o1p_int b = 0; b < B; b++) {
            memcpy(logp + b * T, m.logp + pb.off[b], (size_t)pb.len[b] * sizeof(float));
            if (entropy)
                memcpy(entropy + b * T, m.ent_head + pb.off[b], (size_t)pb.len[b] * sizeof(float));
        }
    }
done:
    free(cut);
    model_rope_free(&rope);
    packed_free(&pb);
    return st;
}

int model_backward(const model_config *c, const float *params, o1p_int B, o1p_int T,
                   const int64_t *ids, const int64_t *lengths, const int64_t *targets,
                   int64_t ignore_index, float temperature, float *arena, o1p_int arena_floats,
                   const float *grad_logp, float *grads) {
    o1p_int d = c->hidden_size, H = c->num_heads, V = c->vocab_size;
    o1p_int Pn = model_num_params(c);
    packed_batch pb;
    model_rope rope = {0, 0, NULL, NULL};
    o1p_int *cut = NULL;
    float *priv = NULL, *own = NULL, *keep = NULL, *keep_own = NULL, **S = NULL;
    double **acc = NULL;
    int groups = 0;
    int st = pack_batch(B, T, V, ids, lengths, targets, &pb);
    if (st != O1P_OK || pb.N == 0) goto done;
    st = model_rope_init(&rope, pb.maxlen, d / H, c->rope_theta);
    cut = (o1p_int *)malloc((size_t)(B + 2) * sizeof(o1p_int));
    if (st != O1P_OK || cut == NULL) {
        st = O1P_ENOMEM;
        goto done;
    }
    arena_map m;
    o1p_int base = arena_carve(c, pb.N, arena, &m);
    if (base < 0 || base > arena_floats) {
        st = O1P_EVALUE;
        goto done;
    }
    for (o1p_int b = 0; b < B; b++)
        memcpy(m.glogp + pb.off[b], grad_logp + b * T, (size_t)pb.len[b] * sizeof(float));
    model_run R = {c, params, &pb, &rope, &m};
    int serial_blas;
    groups = split_batch(c, &pb, cut, &serial_blas);
    /* Everything that can fail comes before the first write into grads, so a
     * call that fails leaves grads as they were. Group 0 accumulates into
     * grads, the others store into private buffers (the arena's tail when it
     * has room, which saves zeroing fresh pages) that are added afterwards in
     * group order. */
    if (groups > 1) {
        if ((arena_floats - base) / Pn >= groups - 1) {
            priv = arena + base;
        } else {
            int ovf = 0;
            o1p_int n = o1p_size_mul(o1p_size_mul(groups - 1, Pn, &ovf), (o1p_int)sizeof(float), &ovf);
            priv = own = ovf ? NULL : (float *)malloc((size_t)n);
            if (priv == NULL) groups = 1;
        }
    }
    size_t blk = (size_t)O1P_ATTN_QBLOCK * (size_t)pb.maxlen;
    S = (float **)calloc((size_t)groups, sizeof(float *));
    acc = (double **)calloc((size_t)groups, sizeof(double *));
    st = O1P_ENOMEM;
    if (S == NULL || acc == NULL) goto done;
    for (int gi = 0; gi < groups; gi++) {
        S[gi] = (float *)malloc((2 * blk + (size_t)d) * sizeof(float));
        acc[gi] = (double *)malloc((size_t)(3 * d) * sizeof(double));
        if (S[gi] == NULL || acc[gi] == NULL) goto done;
    }
    /* The LM head (tied weights: its weight gradient lands in the
     * embedding's rows of grads). Its check that the saved statistics belong
     * to these inputs (a stale arena) comes after it has added to those rows:
     * keep them (in the arena's tail when it has room; the private buffers
     * are only used after this) to put them back. */
    o1p_int embed = V * d; /* <= Pn */
    if (arena_floats - base >= embed) {
        keep = arena + base;
    } else {
        keep = keep_own = (float *)malloc((size_t)embed * sizeof(float));
        if (keep == NULL) goto done;
    }
    memcpy(keep, grads, (size_t)embed * sizeof(float));
    memset(m.dxn, 0, (size_t)(pb.N * d) * sizeof(float));
    st = fused_logprobs_backward(pb.N, d, V, m.xn_f, params, NULL, pb.tgt, ignore_index,
                                 temperature, m.lse_head, m.ent_head, m.glogp, NULL, m.dxn, grads,
                                 NULL);
    if (st != O1P_OK) {
        memcpy(grads, keep, (size_t)embed * sizeof(float));
        goto done;
    }
    if (serial_blas) o1p_blas_serial_begin();
    O1P_OMP(parallel for num_threads(groups) schedule(static, 1))
    for (int gi = 0; gi < groups; gi++) {
        group_backward(&R, cut[gi], cut[gi + 1], gi == 0 ? grads : priv + (size_t)(gi - 1) * Pn,
                       gi > 0, S[gi], acc[gi], S[gi] + 2 * blk);
    }
    if (serial_blas) o1p_blas_serial_end();
    if (groups > 1) {
        const o1p_int chunk = 1 << 14, nchunks = (Pn + chunk - 1) / chunk;
        O1P_OMP(parallel for num_threads(groups) schedule(static))
        for (o1p_int ci = 0; ci < nchunks; ci++) {
            o1p_int i0 = ci * chunk, i1 = O1P_MIN(Pn, i0 + chunk);
            for (int gi = 1; gi < groups; gi++) {
                const float *src = priv + (size_t)(gi - 1) * Pn;
                for (o1p_int i = i0; i < i1; i++) grads[i] += src[i];
            }
        }
    }
done:
    for (int gi = 0; gi < groups && S != NULL && acc != NULL; gi++) {
        free(S[gi]);
        free(acc[gi]);
    }
    free(S);
    free(acc);
    free(keep_own);
    free(own);
    free(cut);
    model_rope_free(&rope);
    packed_free(&pb);
    return st;
}
