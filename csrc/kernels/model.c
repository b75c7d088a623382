/* model.c: parameter layout, the layer building blocks (RMSNorm, rotary
 * embedding, causal attention, SwiGLU) and the training forward/backward of
 * the Qwen2-style transformer declared in model.h. Big matmuls go to BLAS
 * (multi-threaded, outside our parallel regions); per-row work and attention
 * per (sequence, head) run on our OpenMP threads, where the pthreads OpenBLAS
 * sees omp_in_parallel() and stays single-threaded.
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

/* Carve the arena (base may be NULL: only count). Returns the floats needed. */
static o1p_int arena_carve(const model_config *c, o1p_int N, float *base, arena_map *m) {
    o1p_int d = c->hidden_size, F = c->intermediate_size, L = c->num_layers, H = c->num_heads;
    o1p_int off = 0;
#define O1P_TAKE(ptr, n)                              \
    do {                                              \
        (ptr) = base ? base + off : NULL;             \
        off += (n);                                   \
    } while (0)
    O1P_TAKE(m->x, (L + 1) * N * d);
    m->per_layer = N * (1 + d + 3 * d + H + d + d + 1 + d + 2 * F + F);
    O1P_TAKE(m->layers, L * m->per_layer);
    O1P_TAKE(m->rstd_f, N);
    O1P_TAKE(m->xn_f, N * d);
    O1P_TAKE(m->lse_head, N);
    O1P_TAKE(m->ent_head, N);
    O1P_TAKE(m->logp, N);
    O1P_TAKE(m->dx, N * d);
    O1P_TAKE(m->dxn, N * d);
    O1P_TAKE(m->dqkv, N * 3 * d);
    O1P_TAKE(m->datt, N * d);
    O1P_TAKE(m->dgu, N * 2 * F);
    O1P_TAKE(m->dact, N * F);
    O1P_TAKE(m->glogp, N);
#undef O1P_TAKE
    return off;
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

o1p_int model_arena_floats(const model_config *c, o1p_int N) {
    arena_map m;
    return arena_carve(c, N, NULL, &m);
}

/* ---- row kernels (vectorised; target clones pick AVX-512/AVX2) ------------ */

/* Threads for a loop over `rows` rows of `cols` floats each. */
static int threads_for_rows(o1p_int rows, o1p_int cols) {
    return o1p_threads_for(rows * cols, (o1p_int)1 << 14);
}

/* sum x[i]^2 in double with 8 independent partial sums (vectorisable and
 * with a fixed order, so the result does not depend on threads). */
O1P_INLINE double sumsq_d(const float *x, o1p_int n) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    o1p_int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += (double)x[i + j] * (double)x[i + j];
    double tail = 0;
    for (; i < n; i++) tail += (double)x[i] * (double)x[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

O1P_INLINE double dot_d(const float *x, const float *y, o1p_int n) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    o1p_int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += (double)x[i + j] * (double)y[i + j];
    double tail = 0;
    for (; i < n; i++) tail += (double)x[i] * (double)y[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

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
static float rmsnorm_row(o1p_int d, const float *x, const float *w, float eps, float *y) {
    /* as HF Qwen2RMSNorm: w * (x * rsqrt(mean(x^2) + eps)); the mean in double */
    float r = (float)(1.0 / sqrt(sumsq_d(x, d) / (double)d + (double)eps));
    for (o1p_int j = 0; j < d; j++) y[j] = w[j] * (x[j] * r);
    return r;
}

void model_rmsnorm_forward(o1p_int N, o1p_int d, const float *x, const float *w, float eps,
                           float *y, float *rstd) {
    int nt = threads_for_rows(N, d);
    (void)nt;
    O1P_OMP(parallel for num_threads(nt) schedule(static))
    for (o1p_int n = 0; n < N; n++) {
        float r = rmsnorm_row(d, x + n * d, w, eps, y + n * d);
        if (rstd) rstd[n] = r;
    }
}

/* d/dx of y = w x r with r = (mean(x^2) + eps)^(-1/2), g = w dy:
 *   dx = r g - x r^3 (g . x) / d       (ACCUMULATES into dx) */
O1P_TARGET_CLONES
static void rmsnorm_backward_row(o1p_int d, const float *x, float r, const float *w,
                                 const float *dy, float *dx, float *g) {
    for (o1p_int j = 0; j < d; j++) g[j] = w[j] * dy[j];
    float c = (float)(dot_d(g, x, d) * (double)r * (double)r * (double)r / (double)d);
    for (o1p_int j = 0; j < d; j++) dx[j] += r * g[j] - c * x[j];
}

/* dw[j] += sum_n dy[n,j] x[n,j] r[n] over columns c0..c1, double accumulation
 * in row order (so the result does not depend on how columns are split). */
O1P_TARGET_CLONES
static void rmsnorm_dw_cols(o1p_int N, o1p_int d, o1p_int c0, o1p_int c1, const float *x,
                            const float *rstd, const float *dy, double *acc, float *dw) {
    for (o1p_int j = c0; j < c1; j++) acc[j] = 0.0;
    for (o1p_int n = 0; n < N; n++) {
        const float *xr = x + n * d, *gr = dy + n * d;
        double r = rstd[n];
        for (o1p_int j = c0; j < c1; j++) acc[j] += (double)gr[j] * ((double)xr[j] * r);
    }
    for (o1p_int j = c0; j < c1; j++) dw[j] += (float)acc[j];
}

/* column sums: out[j] += sum_n a[n, j] for columns c0..c1 of a[N, ld]. */
O1P_TARGET_CLONES
static void colsum_cols(o1p_int N, o1p_int ld, o1p_int c0, o1p_int c1, const float *a, double *acc,
                        float *out) {
    for (o1p_int j = c0; j < c1; j++) acc[j] = 0.0;
    for (o1p_int n = 0; n < N; n++) {
        const float *ar = a + n * ld;
        for (o1p_int j = c0; j < c1; j++) acc[j] += (double)ar[j];
    }
    for (o1p_int j = c0; j < c1; j++) out[j] += (float)acc[j];
}

/* Split columns 0..C into nt contiguous blocks: block i is [c0, c1). */
static void col_block(o1p_int C, int nt, int i, o1p_int *c0, o1p_int *c1) {
    *c0 = C * i / nt;
    *c1 = C * (i + 1) / nt;
}

/* dx += d/dx (rmsnorm), dw += d/dw. Returns O1P_ENOMEM on allocation failure. */
static int rmsnorm_backward(o1p_int N, o1p_int d, const float *x, const float *rstd,
                            const float *w, const float *dy, float *dx, float *dw) {
    int nt = threads_for_rows(N, d);
    double *acc = (double *)malloc((size_t)d * sizeof(double));
    float *g = (float *)malloc((size_t)nt * (size_t)d * sizeof(float));
    if (!acc || !g) {
        free(acc);
        free(g);
        return O1P_ENOMEM;
    }
    O1P_OMP(parallel num_threads(nt))
    {
        int tid = 0, nth = 1;
#ifdef _OPENMP
        tid = omp_get_thread_num();
        nth = omp_get_num_threads();
#endif
        O1P_OMP(for schedule(static))
        for (o1p_int n = 0; n < N; n++)
            rmsnorm_backward_row(d, x + n * d, rstd[n], w, dy + n * d, dx + n * d, g + (o1p_int)tid * d);
        o1p_int c0, c1;
        col_block(d, nth, tid, &c0, &c1);
        rmsnorm_dw_cols(N, d, c0, c1, x, rstd, dy, acc, dw);
    }
    free(acc);
    free(g);
    return O1P_OK;
}

/* out[j] += sum over rows of a[N, C] (leading dim ld). */
static int colsum_accumulate(o1p_int N, o1p_int C, o1p_int ld, const float *a, float *out) {
    int nt = threads_for_rows(N, C);
    double *acc = (double *)malloc((size_t)C * sizeof(double));
    if (!acc) return O1P_ENOMEM;
    O1P_OMP(parallel num_threads(nt))
    {
        int tid = 0, nth = 1;
#ifdef _OPENMP
        tid = omp_get_thread_num();
        nth = omp_get_num_threads();
#endif
        o1p_int c0, c1;
        col_block(C, nth, tid, &c0, &c1);
        colsum_cols(N, ld, c0, c1, a, acc, out);
    }
    free(acc);
    return O1P_OK;
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
static void bias_rope_row(o1p_int d, o1p_int H, float *row, const float *bias, const float *c,
                          const float *s) {
    for (o1p_int j = 0; j < 3 * d; j++) row[j] += bias[j];
    o1p_int D = d / H, half = D / 2;
    for (o1p_int h = 0; h < 2 * H; h++) { /* H query heads then H key heads */
        float *x1 = row + h * D, *x2 = x1 + half;
        for (o1p_int i = 0; i < half; i++) {
            float a = x1[i], b = x2[i];
            x1[i] = a * c[i] - b * s[i];
            x2[i] = b * c[i] + a * s[i];
        }
    }
}

void model_bias_rope_forward(o1p_int N, o1p_int d, o1p_int H, float *qkv, const float *bias,
                             const int64_t *pos, const model_rope *rope) {
    int nt = threads_for_rows(N, 3 * d);
    (void)nt;
    O1P_OMP(parallel for num_threads(nt) schedule(static))
    for (o1p_int n = 0; n < N; n++) {
        o1p_int p = pos[n];
        bias_rope_row(d, H, qkv + n * 3 * d, bias, rope->cos + p * rope->half,
                      rope->sin + p * rope->half);
    }
}

/* The transpose of the rotation (rotation by -angle) on dq and dk. */
O1P_TARGET_CLONES
static void rope_backward_row(o1p_int d, o1p_int H, float *row, const float *c, const float *s) {
    o1p_int D = d / H, half = D / 2;
    for (o1p_int h = 0; h < 2 * H; h++) {
        float *x1 = row + h * D, *x2 = x1 + half;
        for (o1p_int i = 0; i < half; i++) {
            float a = x1[i], b = x2[i];
            x1[i] = a * c[i] + b * s[i];
            x2[i] = b * c[i] - a * s[i];
        }
    }
}

/* ---- SwiGLU ------------------------------------------------------------- */

O1P_TARGET_CLONES
static void swiglu_row(o1p_int F, const float *gu, float *act) {
    const float *g = gu, *u = gu + F;
    for (o1p_int j = 0; j < F; j++) act[j] = g[j] / (1.0f + o1p_expf(-g[j])) * u[j];
}

void model_swiglu_forward(o1p_int N, o1p_int F, const float *gu, float *act) {
    int nt = threads_for_rows(N, 2 * F);
    (void)nt;
    O1P_OMP(parallel for num_threads(nt) schedule(static))
    for (o1p_int n = 0; n < N; n++) swiglu_row(F, gu + n * 2 * F, act + n * F);
}

/* act = silu(g) u with s = sigmoid(g): d act/d u = g s, d act/d g = u s (1 + g (1 - s)). */
O1P_TARGET_CLONES
static void swiglu_backward_row(o1p_int F, const float *gu, const float *dact, float *dgu) {
    const float *g = gu, *u = gu + F;
    float *dg = dgu, *du = dgu + F;
    for (o1p_int j = 0; j < F; j++) {
        float s = 1.0f / (1.0f + o1p_expf(-g[j]));
        du[j] = dact[j] * g[j] * s;
        dg[j] = dact[j] * u[j] * s * (1.0f + g[j] * (1.0f - s));
    }
}

/* ---- attention ---------------------------------------------------------- */

/* Query rows per block: block i0..i1 only needs keys 0..start+i1, which skips
 * most of the masked upper triangle while keeping the sgemms reasonably big. */
#define O1P_ATTN_QBLOCK 64

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

/* One (sequence, head): n queries at positions start..start+n-1. */
static void attn_head_forward(o1p_int n, o1p_int start, o1p_int D, float scale, const float *q,
                              o1p_int ldq, const float *k, const float *v, o1p_int ldkv, float *o,
                              o1p_int ldo, float *lse, float *S) {
    for (o1p_int i0 = 0; i0 < n; i0 += O1P_ATTN_QBLOCK) {
        o1p_int i1 = O1P_MIN(n, i0 + O1P_ATTN_QBLOCK), m = i1 - i0, nk = start + i1;
        O1P_SGEMM(0, 1, m, nk, D, scale, q + i0 * ldq, ldq, k, ldkv, 0.0f, S, nk);
        for (o1p_int r = 0; r < m; r++) {
            float l = softmax_row(S + r * nk, start + i0 + r + 1, nk);
            if (lse) lse[i0 + r] = l;
        }
        O1P_SGEMM(0, 0, m, D, nk, 1.0f, S, nk, v, ldkv, 0.0f, o + i0 * ldo, ldo);
    }
}

int model_attention_forward(o1p_int nseq, const o1p_int *qrow0, const o1p_int *nq,
                            const o1p_int *start, const o1p_int *krow0, o1p_int H, o1p_int D,
                            const float *q, o1p_int ldq, const float *k, const float *v,
                            o1p_int ldkv, float *out, o1p_int ldo, float *lse,
                            o1p_int lse_stride) {
    o1p_int maxk = 1, work = 0;
    for (o1p_int b = 0; b < nseq; b++) {
        o1p_int nk = (start ? start[b] : 0) + nq[b];
        maxk = O1P_MAX(maxk, nk);
        work += nq[b] * nk;
    }
    o1p_int jobs = nseq * H;
    int nt = o1p_threads_for(work * H * D, (o1p_int)1 << 16);
    if (nt > jobs) nt = (int)(jobs > 0 ? jobs : 1);
    int status = O1P_OK;
    float scale = (float)(1.0 / sqrt((double)D));
    O1P_OMP(parallel num_threads(nt))
    {
        float *S = (float *)malloc((size_t)O1P_ATTN_QBLOCK * (size_t)maxk * sizeof(float));
        if (S == NULL) {
            O1P_OMP(atomic write)
            status = O1P_ENOMEM;
        }
        /* longest sequences first would balance better; rows are similar here */
        O1P_OMP(for schedule(dynamic, 1))
        for (o1p_int job = 0; job < jobs; job++) {
            if (S == NULL) continue;
            o1p_int b = job / H, h = job % H;
            if (nq[b] == 0) continue;
            o1p_int st = start ? start[b] : 0;
            attn_head_forward(nq[b], st, D, scale, q + qrow0[b] * ldq + h * D, ldq,
                              k + krow0[b] * ldkv + h * D, v + krow0[b] * ldkv + h * D, ldkv,
                              out + qrow0[b] * ldo + h * D, ldo,
                              lse ? lse + h * lse_stride + qrow0[b] : NULL, S);
        }
        free(S);
    }
    return status;
}

/* Backward of one (sequence, head) with start = 0 (training). q, k, v are
 * the rotated projections in qkv; o the attention output; dq, dk, dv the
 * matching column slices of dqkv (overwritten). */
static void attn_head_backward(o1p_int n, o1p_int D, float scale, const float *q, const float *k,
                               const float *v, o1p_int ldqkv, const float *o, const float *dO,
                               o1p_int ldo, const float *lse, float *dq, float *dk, float *dv,
                               float *S, float *dP) {
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

static int attention_backward(o1p_int nseq, const o1p_int *off, const o1p_int *len, o1p_int N,
                              o1p_int d, o1p_int H, const float *qkv, const float *att,
                              const float *datt, const float *lse, float *dqkv) {
    o1p_int D = d / H, maxk = 1, work = 0;
    for (o1p_int b = 0; b < nseq; b++) {
        maxk = O1P_MAX(maxk, len[b]);
        work += len[b] * len[b];
    }
    o1p_int jobs = nseq * H;
    int nt = o1p_threads_for(work * d, (o1p_int)1 << 16);
    if (nt > jobs) nt = (int)(jobs > 0 ? jobs : 1);
    int status = O1P_OK;
    float scale = (float)(1.0 / sqrt((double)D));
    o1p_int ld = 3 * d;
    O1P_OMP(parallel num_threads(nt))
    {
        size_t blk = (size_t)O1P_ATTN_QBLOCK * (size_t)maxk;
        float *S = (float *)malloc(2 * blk * sizeof(float));
        if (S == NULL) {
            O1P_OMP(atomic write)
            status = O1P_ENOMEM;
        }
        O1P_OMP(for schedule(dynamic, 1))
        for (o1p_int job = 0; job < jobs; job++) {
            if (S == NULL) continue;
            o1p_int b = job / H, h = job % H, r0 = off[b];
            if (len[b] == 0) continue;
            const float *base = qkv + r0 * ld + h * D;
            float *dbase = dqkv + r0 * ld + h * D;
            attn_head_backward(len[b], D, scale, base, base + d, base + 2 * d, ld,
                               att + r0 * d + h * D, datt + r0 * d + h * D, d, lse + h * N + r0,
                               dbase, dbase + d, dbase + 2 * d, S, S + blk);
        }
        free(S);
    }
    return status;
}

/* ---- forward / backward ------------------------------------------------- */

/* Packed view of a right-padded batch. */
typedef struct {
    o1p_int B, N, maxlen;
    o1p_int *off, *len; /* [B+1], [B] */
    int64_t *ids, *tgt, *pos; /* [N] */
} packed_batch;

static void packed_free(packed_batch *p) {
    free(p->off);
    free(p->len);
    free(p->ids);
    free(p->tgt);
    free(p->pos);
}

static int pack_batch(o1p_int B, o1p_int T, const int64_t *ids, const int64_t *lengths,
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
            o1p_int n_ = p->off[b] + t;
            p->ids[n_] = ids[b * T + t];
            p->tgt[n_] = targets ? targets[b * T + t] : 0;
            p->pos[n_] = t;
        }
    }
    return O1P_OK;
}

/* x[N,d] = embed[ids[n]] */
static void embed_forward(o1p_int N, o1p_int d, const int64_t *ids, const float *embed, float *x) {
    int nt = threads_for_rows(N, d);
    (void)nt;
    O1P_OMP(parallel for num_threads(nt) schedule(static))
    for (o1p_int n = 0; n < N; n++) memcpy(x + n * d, embed + ids[n] * d, (size_t)d * sizeof(float));
}

int model_forward(const model_config *c, const float *params, o1p_int B, o1p_int T,
                  const int64_t *ids, const int64_t *lengths, const int64_t *targets,
                  int64_t ignore_index, float temperature, float *arena, float *logp,
                  float *entropy, float *hidden) {
    o1p_int d = c->hidden_size, F = c->intermediate_size, L = c->num_layers, H = c->num_heads;
    o1p_int V = c->vocab_size;
    if (logp) memset(logp, 0, (size_t)(B * T) * sizeof(float));
    if (entropy) memset(entropy, 0, (size_t)(B * T) * sizeof(float));
    if (hidden) memset(hidden, 0, (size_t)(B * T * d) * sizeof(float));
    packed_batch pb;
    model_rope rope = {0, 0, NULL, NULL};
    int st = pack_batch(B, T, ids, lengths, targets, &pb);
    if (st != O1P_OK || pb.N == 0) goto done;
    o1p_int N = pb.N;
    if (pb.maxlen > c->max_positions) {
        st = O1P_EVALUE;
        goto done;
    }
    st = model_rope_init(&rope, pb.maxlen, d / H, c->rope_theta);
    if (st != O1P_OK) goto done;
    arena_map m;
    arena_carve(c, N, arena, &m);
    const float *embed = params;
    embed_forward(N, d, pb.ids, embed, m.x);

    for (o1p_int l = 0; l < L; l++) {
        model_layer_offsets o = model_layer_offsets_of(c, l);
        layer_acts a = layer_acts_of(c, N, &m, l);
        const float *x_in = m.x + l * N * d;
        float *x_out = m.x + (l + 1) * N * d;
        /* attention block: x_mid = x_in + o_proj(attn(rope(qkv(rms(x_in))))) */
        model_rmsnorm_forward(N, d, x_in, params + o.ln1, c->rms_norm_eps, a.xn1, a.rstd1);
        O1P_SGEMM(0, 1, N, 3 * d, d, 1.0f, a.xn1, d, params + o.wqkv, d, 0.0f, a.qkv, 3 * d);
        model_bias_rope_forward(N, d, H, a.qkv, params + o.bqkv, pb.pos, &rope);
        st = model_attention_forward(B, pb.off, pb.len, NULL, pb.off, H, d / H, a.qkv, 3 * d,
                                     a.qkv + d, a.qkv + 2 * d, 3 * d, a.att, d, a.lse, N);
        if (st != O1P_OK) goto done;
        memcpy(a.x_mid, x_in, (size_t)(N * d) * sizeof(float));
        O1P_SGEMM(0, 1, N, d, d, 1.0f, a.att, d, params + o.wo, d, 1.0f, a.x_mid, d);
        /* MLP block: x_out = x_mid + down(silu(gate(h)) * up(h)), h = rms(x_mid) */
        model_rmsnorm_forward(N, d, a.x_mid, params + o.ln2, c->rms_norm_eps, a.xn2, a.rstd2);
        O1P_SGEMM(0, 1, N, 2 * F, d, 1.0f, a.xn2, d, params + o.wgu, d, 0.0f, a.gu, 2 * F);
        model_swiglu_forward(N, F, a.gu, a.act);
        memcpy(x_out, a.x_mid, (size_t)(N * d) * sizeof(float));
        O1P_SGEMM(0, 1, N, d, F, 1.0f, a.act, F, params + o.wdown, F, 1.0f, x_out, d);
    }
    model_rmsnorm_forward(N, d, m.x + L * N * d, params + model_norm_offset(c), c->rms_norm_eps,
                          m.xn_f, m.rstd_f);
    if (hidden) {
        for (o1p_int b = 0; b < B; b++)
            memcpy(hidden + b * T * d, m.xn_f + pb.off[b] * d, (size_t)(pb.len[b] * d) * sizeof(float));
    }
    if (targets) {
        st = fused_logprobs_forward(N, d, V, m.xn_f, embed, NULL, pb.tgt, ignore_index, temperature,
                                    m.logp, m.ent_head, m.lse_head);
        if (st != O1P_OK) goto done;
        for (o1p_int b = 0; b < B; b++) {
            memcpy(logp + b * T, m.logp + pb.off[b], (size_t)pb.len[b] * sizeof(float));
            if (entropy)
                memcpy(entropy + b * T, m.ent_head + pb.off[b], (size_t)pb.len[b] * sizeof(float));
        }
    }
done:
    model_rope_free(&rope);
    packed_free(&pb);
    return st;
}

/* grad_embed[ids[n]] += dx[n]; split over columns so no two threads touch
 * the same float and the order over n is fixed. */
static void embed_backward(o1p_int N, o1p_int d, const int64_t *ids, const float *dx, float *gembed) {
    int nt = threads_for_rows(N, d);
    if (nt > d) nt = (int)d;
    O1P_OMP(parallel num_threads(nt))
    {
        int tid = 0, nth = 1;
#ifdef _OPENMP
        tid = omp_get_thread_num();
        nth = omp_get_num_threads();
#endif
        o1p_int c0, c1;
        col_block(d, nth, tid, &c0, &c1);
        for (o1p_int n = 0; n < N; n++) {
            float *g = gembed + ids[n] * d;
            const float *s = dx + n * d;
            for (o1p_int j = c0; j < c1; j++) g[j] += s[j];
        }
    }
}

int model_backward(const model_config *c, const float *params, o1p_int B, o1p_int T,
                   const int64_t *ids, const int64_t *lengths, const int64_t *targets,
                   int64_t ignore_index, float temperature, float *arena,
                   const float *grad_logp, float *grads) {
    o1p_int d = c->hidden_size, F = c->intermediate_size, L = c->num_layers, H = c->num_heads;
    o1p_int V = c->vocab_size;
    packed_batch pb;
    model_rope rope = {0, 0, NULL, NULL};
    int st = pack_batch(B, T, ids, lengths, targets, &pb);
    if (st != O1P_OK || pb.N == 0) goto done;
    o1p_int N = pb.N;
    st = model_rope_init(&rope, pb.maxlen, d / H, c->rope_theta);
    if (st != O1P_OK) goto done;
    arena_map m;
    arena_carve(c, N, arena, &m);
    const float *embed = params;
    for (o1p_int b = 0; b < B; b++)
        memcpy(m.glogp + pb.off[b], grad_logp + b * T, (size_t)pb.len[b] * sizeof(float));

    /* LM head (tied weights: its weight gradient lands in the embedding's) */
    memset(m.dxn, 0, (size_t)(N * d) * sizeof(float));
    st = fused_logprobs_backward(N, d, V, m.xn_f, embed, NULL, pb.tgt, ignore_index, temperature,
                                 m.lse_head, m.ent_head, m.glogp, NULL, m.dxn, grads, NULL);
    if (st != O1P_OK) goto done;
    memset(m.dx, 0, (size_t)(N * d) * sizeof(float));
    o1p_int on = model_norm_offset(c);
    st = rmsnorm_backward(N, d, m.x + L * N * d, m.rstd_f, params + on, m.dxn, m.dx, grads + on);
    if (st != O1P_OK) goto done;

    for (o1p_int l = L - 1; l >= 0; l--) {
        model_layer_offsets o = model_layer_offsets_of(c, l);
        layer_acts a = layer_acts_of(c, N, &m, l);
        const float *x_in = m.x + l * N * d;
        /* m.dx holds dL/dx_out; MLP block */
        O1P_SGEMM(0, 0, N, F, d, 1.0f, m.dx, d, params + o.wdown, F, 0.0f, m.dact, F);
        O1P_SGEMM(1, 0, d, F, N, 1.0f, m.dx, d, a.act, F, 1.0f, grads + o.wdown, F);
        {
            int nt = threads_for_rows(N, 2 * F);
            (void)nt;
            O1P_OMP(parallel for num_threads(nt) schedule(static))
            for (o1p_int n = 0; n < N; n++)
                swiglu_backward_row(F, a.gu + n * 2 * F, m.dact + n * F, m.dgu + n * 2 * F);
        }
        O1P_SGEMM(0, 0, N, d, 2 * F, 1.0f, m.dgu, 2 * F, params + o.wgu, d, 0.0f, m.dxn, d);
        O1P_SGEMM(1, 0, 2 * F, d, N, 1.0f, m.dgu, 2 * F, a.xn2, d, 1.0f, grads + o.wgu, d);
        st = rmsnorm_backward(N, d, a.x_mid, a.rstd2, params + o.ln2, m.dxn, m.dx, grads + o.ln2);
        if (st != O1P_OK) goto done;
        /* m.dx holds dL/dx_mid; attention block */
        O1P_SGEMM(0, 0, N, d, d, 1.0f, m.dx, d, params + o.wo, d, 0.0f, m.datt, d);
        O1P_SGEMM(1, 0, d, d, N, 1.0f, m.dx, d, a.att, d, 1.0f, grads + o.wo, d);
        st = attention_backward(B, pb.off, pb.len, N, d, H, a.qkv, a.att, m.datt, a.lse, m.dqkv);
        if (st != O1P_OK) goto done;
        {
            int nt = threads_for_rows(N, 2 * d);
            (void)nt;
            O1P_OMP(parallel for num_threads(nt) schedule(static))
            for (o1p_int n = 0; n < N; n++)
                rope_backward_row(d, H, m.dqkv + n * 3 * d, rope.cos + pb.pos[n] * rope.half,
                                  rope.sin + pb.pos[n] * rope.half);
        }
        st = colsum_accumulate(N, 3 * d, 3 * d, m.dqkv, grads + o.bqkv);
        if (st != O1P_OK) goto done;
        O1P_SGEMM(0, 0, N, d, 3 * d, 1.0f, m.dqkv, 3 * d, params + o.wqkv, d, 0.0f, m.dxn, d);
        O1P_SGEMM(1, 0, 3 * d, d, N, 1.0f, m.dqkv, 3 * d, a.xn1, d, 1.0f, grads + o.wqkv, d);
        st = rmsnorm_backward(N, d, x_in, a.rstd1, params + o.ln1, m.dxn, m.dx, grads + o.ln1);
        if (st != O1P_OK) goto done;
    }
    embed_backward(N, d, pb.ids, m.dx, grads);
done:
    model_rope_free(&rope);
    packed_free(&pb);
    return st;
}
