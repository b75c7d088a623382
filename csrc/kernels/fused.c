/* fused.c: fused LM head + token log-probs (contract in fused.h). The logits
 * are made tile by tile (tokens x vocabulary) by sgemm into a small buffer;
 * the forward folds each tile row into an online (max, sum exp, sum z exp)
 * state, the backward recomputes the tile, turns it into the logit gradient in
 * place and hands it to two more sgemms. Only O(N) statistics and one tile
 * buffer per thread are ever allocated.
 */
#include "fused.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "vmath.h"

/* Tile geometry (compile-time, overridable for tuning experiments).
 * Token chunks hold FUSED_ROWS_MIN..2*FUSED_ROWS_MIN-1 rows: below ~256 rows
 * sgemm loses efficiency (performance.md), and 512 measured 1-3% better than
 * 256 here, mostly for the K = rows sgemm of the weight gradient. Vocabulary
 * tiles are FUSED_COLS wide, so a typical 512 x 512 tile (1 MiB) stays in one
 * core's 2 MiB L2 between the sgemm that writes it and the passes that read
 * it. A thread splits tokens only if it gets >= FUSED_MIN_ROWS of them; with
 * fewer rows the threads split the vocabulary instead. */
#ifndef FUSED_ROWS_MIN
#define FUSED_ROWS_MIN 512
#endif
#ifndef FUSED_COLS
#define FUSED_COLS 512
#endif
#ifndef FUSED_MIN_ROWS
#define FUSED_MIN_ROWS 128
#endif
#define FUSED_ROWS_MAX (2 * FUSED_ROWS_MIN - 1)
/* Multiply-adds (rows x vocab x d) worth a second thread (~1 ms). */
#define FUSED_MIN_WORK ((o1p_int)1 << 26)
/* Independent accumulators per reduction: two AVX-512 registers of floats, so
 * the reductions vectorise without reassociating a single sum (with 16,
 * GCC unrolls the lane loop completely and then fails to vectorise it). */
#define LANES 32

/* ---- plan: which rows each thread handles, in chunks --------------------- */

/* A chunk: rows row0..row0+n-1 of hidden, all valid (target != ignore_index);
 * c0 is the index of row0 among the valid rows (the "compact" index). */
typedef struct {
    o1p_int row0, n, c0;
} chunk_t;

typedef struct {
    chunk_t *chunks;
    o1p_int *group_first; /* group g owns chunks group_first[g] .. group_first[g+1]-1 */
    o1p_int nvalid;
    int ngroups;
} plan_t;

static o1p_int group_bound(o1p_int g, o1p_int nvalid, int ngroups) {
    /* g * nvalid / ngroups without forming g * nvalid */
    return nvalid / ngroups * g + nvalid % ngroups * g / ngroups;
}

/* Cut the valid rows into `ngroups` groups of (almost) equal size, then each
 * run of consecutive valid rows within a group into chunks of
 * FUSED_ROWS_MIN..FUSED_ROWS_MAX rows (a shorter run is one chunk). Ignored
 * rows are never inside a chunk, so sgemm reads hidden in place. With
 * out == NULL only counts; else at most `cap` chunks are written.
 * Returns the number of chunks, or -1 when this pass does not find exactly
 * nvalid valid rows (or more than cap chunks): the targets changed since they
 * were counted, and nothing past the buffers has been written. */
static o1p_int cut_chunks(o1p_int N, const int64_t *targets, int64_t ignore_index,
                          o1p_int nvalid, int ngroups, chunk_t *out, o1p_int cap,
                          o1p_int *group_first) {
    o1p_int count = 0, c = 0, i = 0;
    int g = 0;
    if (group_first) group_first[0] = 0;
    while (i < N) {
        if (targets[i] == ignore_index) {
            i++;
            continue;
        }
        o1p_int r0 = i;
        while (i < N && targets[i] != ignore_index) i++;
        o1p_int c_end = c + (i - r0), row = r0;
        if (c_end > nvalid) return -1; /* keeps c, and so g, in range below */
        while (c < c_end) {
            while (c >= group_bound(g + 1, nvalid, ngroups)) {
                g++;
                if (group_first) group_first[g] = count;
            }
            o1p_int piece_end = O1P_MIN(c_end, group_bound(g + 1, nvalid, ngroups));
            o1p_int L = piece_end - c, k = O1P_MAX(1, L / FUSED_ROWS_MIN);
            for (o1p_int q = 0; q < k; q++) {
                o1p_int a = q * L / k, b = (q + 1) * L / k;
                if (out) {
                    if (count >= cap) return -1;
                    out[count] = (chunk_t){row + a, b - a, c + a};
                }
                count++;
            }
            row += L;
            c = piece_end;
        }
    }
    if (c != nvalid) return -1;
    while (g < ngroups) {
        g++;
        if (group_first) group_first[g] = count;
    }
    return count;
}

static void plan_free(plan_t *p) {
    free(p->chunks);
    free(p->group_first);
}

static int plan_make(plan_t *p, o1p_int N, const int64_t *targets, int64_t ignore_index,
                     o1p_int nvalid, int ngroups) {
    p->nvalid = nvalid;
    p->ngroups = ngroups;
    /* targets are read twice here (count, then fill) and once more by the
     * passes: the bindings hand over a private copy, and any disagreement
     * between the passes is an error rather than a write past a buffer */
    o1p_int n = cut_chunks(N, targets, ignore_index, nvalid, ngroups, NULL, 0, NULL);
    if (n < 0) return O1P_EINDEX;
    p->chunks = (chunk_t *)malloc((size_t)(n + 1) * sizeof(chunk_t));
    p->group_first = (o1p_int *)malloc((size_t)(ngroups + 1) * sizeof(o1p_int));
    if (p->chunks == NULL || p->group_first == NULL) {
        plan_free(p);
        p->chunks = NULL, p->group_first = NULL;
        return O1P_ENOMEM;
    }
    if (cut_chunks(N, targets, ignore_index, nvalid, ngroups, p->chunks, n, p->group_first) != n)
        return O1P_EINDEX;
    return O1P_OK;
}

/* Threads of our own for nvalid x V x d multiply-adds (the product
 * saturates). Without OpenMP our loops run on one thread and BLAS keeps its
 * own threads instead (see blas_serial). */
static int threads_for(o1p_int nvalid, o1p_int V, o1p_int d) {
#ifdef _OPENMP
    double work = (double)nvalid * (double)V * (double)O1P_MAX(d, 1);
    return o1p_threads_for(work > 4e18 ? (o1p_int)4e18 : (o1p_int)work, FUSED_MIN_WORK);
#else
    (void)nvalid, (void)V, (void)d;
    return 1;
#endif
}

/* BLAS runs on one thread inside our parallel regions (o1p.h). */
static void blas_serial(int begin) {
#ifdef _OPENMP
    if (begin)
        o1p_blas_serial_begin();
    else
        o1p_blas_serial_end();
#else
    (void)begin;
#endif
}

/* Columns [lo, hi) of vocabulary part `part` out of `parts`: (almost) equal
 * parts whose inner boundaries are multiples of LANES, so that every tile
 * (FUSED_COLS apart from lo) starts on a whole vector of lanes. */
static o1p_int part_bound(o1p_int len, o1p_int parts, o1p_int p) {
    if (p >= parts) return len;
    return (len / parts * p + len % parts * p / parts) / LANES * LANES;
}

/* Raw logits of a chunk x tile: x[n, w] = hidden[rows] weight[cols]^T. */
static void tile_logits(const chunk_t *ch, o1p_int j0, o1p_int w, o1p_int d,
                        const float *hidden, const float *weight, float *x) {
    if (d == 0) {
        memset(x, 0, (size_t)(ch->n * w) * sizeof(float));
        return;
    }
    O1P_SGEMM(0, 1, ch->n, w, d, 1.0f, hidden + ch->row0 * d, d, weight + j0 * d, d, 0.0f, x, w);
}

/* ---- per-row passes over one tile row (vectorised, target clones) -------- */

/* z = (x + b) inv_t over n columns: returns max z (-inf if every z is -inf)
 * and adds to *bad a non-zero (NaN) value when some raw logit x is not finite
 * (only non-finite hidden/weight or an overflowing product make one). NaN z
 * are caught later by the sums. */
O1P_TARGET_CLONES
static float row_max(const float *O1P_RESTRICT x, const float *O1P_RESTRICT b, float inv_t,
                     o1p_int n, float *bad) {
    float mx[LANES], nf[LANES];
    for (int k = 0; k < LANES; k++) mx[k] = -INFINITY, nf[k] = 0.0f;
    o1p_int j = 0;
    for (; j + LANES <= n; j += LANES) {
        for (int k = 0; k < LANES; k++) {
            float xv = x[j + k], z = (xv + b[j + k]) * inv_t;
            mx[k] = z > mx[k] ? z : mx[k];
            nf[k] += xv - xv; /* 0 for finite x, NaN for inf or NaN */
        }
    }
    for (; j < n; j++) {
        float xv = x[j], z = (xv + b[j]) * inv_t;
        mx[0] = z > mx[0] ? z : mx[0];
        nf[0] += xv - xv;
    }
    float m = mx[0], f = nf[0];
    for (int k = 1; k < LANES; k++) m = mx[k] > m ? mx[k] : m, f += nf[k];
    *bad += f;
    return m;
}

/* With u = z - shift (shift >= every z): *s = sum exp(u), *t = sum u exp(u).
 * Summing relative to the running max keeps every term <= 1 (no overflow,
 * and u <= 0 allows the cheaper o1p_expf_nonpos) and gives the entropy as
 * log s - t/s without cancelling large logits.
 * A masked logit (bias -inf) has exp(u) = 0 and adds nothing; a -inf logit
 * with a finite bias (non-finite hidden/weight) makes *t NaN, as does a NaN.
 * Each lane sums at most FUSED_COLS / LANES terms in float; the lanes, and
 * then the tiles of the vocabulary, are summed in double. */
O1P_TARGET_CLONES
static void row_sums(const float *O1P_RESTRICT x, const float *O1P_RESTRICT b, float inv_t,
                     float shift, o1p_int n, double *s_out, double *t_out) {
    float s[LANES], t[LANES];
    for (int k = 0; k < LANES; k++) s[k] = 0.0f, t[k] = 0.0f;
    o1p_int j = 0;
    for (; j + LANES <= n; j += LANES) {
        for (int k = 0; k < LANES; k++) {
            float bk = b[j + k], u = (x[j + k] + bk) * inv_t - shift;
            float e = o1p_expf_nonpos(u);
            u = bk < -FLT_MAX ? 0.0f : u; /* masked: -inf * 0 would be NaN */
            s[k] += e;
            t[k] += u * e;
        }
    }
    for (; j < n; j++) {
        float bk = b[j], u = (x[j] + bk) * inv_t - shift;
        float e = o1p_expf_nonpos(u);
        u = bk < -FLT_MAX ? 0.0f : u;
        s[0] += e;
        t[0] += u * e;
    }
    double ss = 0.0, tt = 0.0;
    for (int k = 0; k < LANES; k++) ss += (double)s[k], tt += (double)t[k];
    *s_out = ss;
    *t_out = tt;
}

/* In place, raw logits x -> logit gradient of grad_logp logp + grad_ent H:
 *   g = (dl (1[j = t] - p) - dh p (z - E_p z)) / T,  p = exp(z - lse)
 * (the one-hot term is added by the caller). Returns sum p for the
 * consistency check of the saved statistics; *bad as in row_max. */
O1P_TARGET_CLONES
static double row_grad(float *O1P_RESTRICT x, const float *O1P_RESTRICT b, float inv_t, float lse,
                       float ez, float dl, float dh, o1p_int n, float *bad) {
    double ps[LANES];
    float nf[LANES];
    for (int k = 0; k < LANES; k++) ps[k] = 0.0, nf[k] = 0.0f;
    o1p_int j = 0;
    for (; j + LANES <= n; j += LANES) {
        for (int k = 0; k < LANES; k++) {
            float xv = x[j + k], z = (xv + b[j + k]) * inv_t;
            float p = o1p_expf(z - lse);
            float dz = z < -FLT_MAX ? 0.0f : z - ez; /* masked: p = 0, keep it finite */
            nf[k] += xv - xv;
            ps[k] += (double)p;
            x[j + k] = -(p * dl + (p * dz) * dh) * inv_t; /* p*dz first: dh*dz may overflow */
        }
    }
    for (; j < n; j++) {
        float xv = x[j], z = (xv + b[j]) * inv_t;
        float p = o1p_expf(z - lse);
        float dz = z < -FLT_MAX ? 0.0f : z - ez;
        nf[0] += xv - xv;
        ps[0] += (double)p;
        x[j] = -(p * dl + (p * dz) * dh) * inv_t;
    }
    double s = 0.0;
    float f = 0.0f;
    for (int k = 0; k < LANES; k++) s += ps[k], f += nf[k];
    *bad += f;
    return s;
}

/* acc[j] += sum over the n rows of g[i, j] (the bias gradient of a tile). */
O1P_TARGET_CLONES
static void column_sums(const float *O1P_RESTRICT g, o1p_int n, o1p_int w, double *O1P_RESTRICT acc) {
    for (o1p_int i = 0; i < n; i++) {
        const float *row = g + i * w;
        for (o1p_int j = 0; j < w; j++) acc[j] += (double)row[j];
    }
}

/* ---- online softmax state ------------------------------------------------ */

/* Fold (m2, s2, t2) into (m, s, t); s, t are relative to their own max m:
 * s = sum exp(z - m), t = sum (z - m) exp(z - m). An empty state has m = -inf. */
static void state_merge(double *m, double *s, double *t, double m2, double s2, double t2) {
    if (m2 == -INFINITY) return;
    if (*m == -INFINITY) {
        *m = m2, *s = s2, *t = t2;
        return;
    }
    double M = *m > m2 ? *m : m2;
    double a = exp(*m - M), a2 = exp(m2 - M);
    *t = a * (*t + (*m - M) * *s) + a2 * (t2 + (m2 - M) * s2);
    *s = a * *s + a2 * s2;
    *m = M;
}

/* ---- forward ------------------------------------------------------------- */

typedef struct {
    o1p_int d, V;
    const float *hidden, *weight, *bias;
    const int64_t *targets;
    float inv_t;
    const plan_t *plan;
    int nparts;           /* vocabulary parts per token group */
    double *m, *s, *t;    /* [nparts][nvalid] online state */
    double *zt;           /* [nvalid] target logit */
    float *tiles;         /* [threads][FUSED_ROWS_MAX * FUSED_COLS] */
    int *status;          /* [threads] */
} fwd_ctx;

static void forward_item(const fwd_ctx *c, int k) {
    const plan_t *p = c->plan;
    int g = k / c->nparts, part = k % c->nparts;
    float *x = c->tiles + (size_t)k * FUSED_ROWS_MAX * FUSED_COLS;
    const o1p_int nv = p->nvalid;
    double *m = c->m + part * nv, *s = c->s + part * nv, *t = c->t + part * nv;
    float bad = 0.0f;
    o1p_int hi = part_bound(c->V, c->nparts, part + 1);
    /* vocabulary tiles outside, token chunks inside: the weight tile stays in
     * cache while every chunk of the group passes over it */
    for (o1p_int j0 = part_bound(c->V, c->nparts, part); j0 < hi; j0 += FUSED_COLS) {
        o1p_int j1 = O1P_MIN(hi, j0 + FUSED_COLS), w = j1 - j0;
        const float *b = c->bias + j0;
        for (o1p_int q = p->group_first[g]; q < p->group_first[g + 1]; q++) {
            const chunk_t *ch = &p->chunks[q];
            tile_logits(ch, j0, w, c->d, c->hidden, c->weight, x);
            for (o1p_int i = 0; i < ch->n; i++) {
                const float *xr = x + i * w;
                o1p_int ci = ch->c0 + i;
                int64_t tgt = c->targets[ch->row0 + i];
                if (tgt >= j0 && tgt < j1) c->zt[ci] = (double)((xr[tgt - j0] + b[tgt - j0]) * c->inv_t);
                float mt = row_max(xr, b, c->inv_t, w, &bad);
                if (mt == -INFINITY) continue; /* a fully masked tile row adds nothing */
                if (mt == INFINITY) {
                    bad += NAN;
                    continue;
                }
                /* shift by the running max so far, then fold in */
                double M = m[ci] > mt ? m[ci] : mt, s2, t2;
                row_sums(xr, b, c->inv_t, (float)M, w, &s2, &t2);
                state_merge(&m[ci], &s[ci], &t[ci], M, s2, t2);
            }
        }
    }
    c->status[k] = bad == 0.0f ? O1P_OK : O1P_EVALUE;
}

/* Effective bias: the caller's, or zeros (shared, read-only). */
static const float *bias_or_zeros(const float *bias, o1p_int V, float **owned) {
    *owned = NULL;
    if (bias) return bias;
    *owned = (float *)calloc((size_t)O1P_MAX(V, 1), sizeof(float));
    return *owned;
}

static o1p_int count_valid(o1p_int N, const int64_t *targets, int64_t ignore_index, o1p_int V,
                           int *status) {
    o1p_int nvalid = 0;
    *status = O1P_OK;
    for (o1p_int i = 0; i < N; i++) {
        if (targets[i] == ignore_index) continue;
        if (targets[i] < 0 || targets[i] >= V) *status = O1P_EINDEX;
        nvalid++;
    }
    return nvalid;
}

int fused_logprobs_forward(o1p_int N, o1p_int d, o1p_int V, const float *hidden,
                           const float *weight, const float *bias, const int64_t *targets,
                           int64_t ignore_index, float temperature, float *logp, float *entropy,
                           float *lse) {
    int status;
    if (N > 0) {
        memset(logp, 0, (size_t)N * sizeof(float));
        memset(entropy, 0, (size_t)N * sizeof(float));
        memset(lse, 0, (size_t)N * sizeof(float));
    }
    o1p_int nvalid = count_valid(N, targets, ignore_index, V, &status);
    if (status != O1P_OK || nvalid == 0) return status;
    if (d > O1P_BLAS_INT_MAX) return O1P_EVALUE;

    int nt = threads_for(nvalid, V, d);
    int split_tokens = nvalid >= (o1p_int)nt * FUSED_MIN_ROWS;
    int ngroups = split_tokens ? nt : 1, nparts = split_tokens ? 1 : nt;
    plan_t plan = {0};
    float *zeros = NULL;
    fwd_ctx c = {0};
    c.d = d, c.V = V, c.hidden = hidden, c.weight = weight, c.targets = targets;
    c.inv_t = 1.0f / temperature;
    c.plan = &plan, c.nparts = nparts;
    size_t ns = (size_t)nparts * (size_t)nvalid;
    c.m = (double *)malloc(ns * sizeof(double));
    c.s = (double *)calloc(ns, sizeof(double));
    c.t = (double *)calloc(ns, sizeof(double));
    c.zt = (double *)malloc((size_t)nvalid * sizeof(double));
    c.tiles = (float *)malloc((size_t)nt * FUSED_ROWS_MAX * FUSED_COLS * sizeof(float));
    c.status = (int *)calloc((size_t)nt, sizeof(int));
    c.bias = bias_or_zeros(bias, V, &zeros);
    status = O1P_ENOMEM;
    if (!c.m || !c.s || !c.t || !c.zt || !c.tiles || !c.status || !c.bias) goto done;
    status = plan_make(&plan, N, targets, ignore_index, nvalid, ngroups);
    if (status != O1P_OK) goto done;
    for (size_t i = 0; i < ns; i++) c.m[i] = -INFINITY;
    for (o1p_int i = 0; i < nvalid; i++) c.zt[i] = NAN;

    blas_serial(1);
    O1P_OMP(parallel for num_threads(nt) schedule(static))
    for (int k = 0; k < nt; k++) forward_item(&c, k);
    blas_serial(0);

    status = O1P_OK;
    for (int k = 0; k < nt; k++)
        if (c.status[k] != O1P_OK) status = c.status[k];
    /* merge the vocabulary parts and finish each valid row:
     * lse = m + log s, H = log s - t / s, logp = z_t - lse */
    for (o1p_int q = 0; q < plan.group_first[ngroups] && status == O1P_OK; q++) {
        const chunk_t *ch = &plan.chunks[q];
        for (o1p_int i = 0; i < ch->n; i++) {
            o1p_int ci = ch->c0 + i, row = ch->row0 + i;
            double m = c.m[ci], s = c.s[ci], t = c.t[ci];
            for (int part = 1; part < nparts; part++) {
                o1p_int j = part * nvalid + ci;
                state_merge(&m, &s, &t, c.m[j], c.s[j], c.t[j]);
            }
            if (m == -INFINITY || !(s > 0.0) || !isfinite(s) || !isfinite(t) || isnan(c.zt[ci])) {
                status = O1P_EVALUE;
                break;
            }
            double ls = log(s), l = m + ls;
            lse[row] = (float)l;
            double H = ls - t / s; /* >= 0 up to rounding: clamp the rounding away */
            entropy[row] = (float)(H > 0.0 ? H : 0.0);
            logp[row] = (float)(c.zt[ci] - l);
        }
    }
done:
    if (status != O1P_OK && N > 0) {
        memset(logp, 0, (size_t)N * sizeof(float));
        memset(entropy, 0, (size_t)N * sizeof(float));
        memset(lse, 0, (size_t)N * sizeof(float));
    }
    plan_free(&plan);
    free(c.m), free(c.s), free(c.t), free(c.zt), free(c.tiles), free(c.status), free(zeros);
    return status;
}

/* ---- backward ------------------------------------------------------------ */

typedef struct {
    o1p_int d, V;
    const float *hidden, *weight, *bias;
    const int64_t *targets;
    float inv_t;
    const float *lse, *entropy, *grad_logp, *grad_entropy;
    float *grad_weight, *grad_bias;
    const plan_t *plan;
    int nblocks;          /* vocabulary blocks (= threads) */
    float **dh;           /* [threads] where thread k adds its hidden gradient */
    int dh_compact;       /* dh rows indexed by compact index (private buffers) */
    double *psum;         /* [slots][nvalid] sum of p per row (consistency check) */
    int psum_per_thread;  /* 1: slot = thread, 0: one shared slot */
    float *tiles;         /* [threads][FUSED_ROWS_MAX * FUSED_COLS] */
    double *colacc;       /* [threads][FUSED_COLS] bias-gradient accumulators */
    float *bad;           /* [threads] */
} bwd_ctx;

/* Thread k: token group g, vocabulary block blk. Writes rows of its dh
 * destination, rows blk of grad_weight / grad_bias and its psum slot. */
static void backward_item(const bwd_ctx *c, int k, int g, int blk) {
    const plan_t *p = c->plan;
    const o1p_int d = c->d, nv = p->nvalid;
    float *x = c->tiles + (size_t)k * FUSED_ROWS_MAX * FUSED_COLS;
    double *acc = c->colacc + (size_t)k * FUSED_COLS;
    double *psum = c->psum + (c->psum_per_thread ? k * nv : 0);
    float *dh = c->dh[k];
    float bad = 0.0f;
    o1p_int hi = part_bound(c->V, c->nblocks, blk + 1);
    for (o1p_int j0 = part_bound(c->V, c->nblocks, blk); j0 < hi; j0 += FUSED_COLS) {
        o1p_int j1 = O1P_MIN(hi, j0 + FUSED_COLS), w = j1 - j0;
        const float *b = c->bias + j0;
        if (c->grad_bias) memset(acc, 0, (size_t)w * sizeof(double));
        for (o1p_int q = p->group_first[g]; q < p->group_first[g + 1]; q++) {
            const chunk_t *ch = &p->chunks[q];
            tile_logits(ch, j0, w, d, c->hidden, c->weight, x);
            for (o1p_int i = 0; i < ch->n; i++) {
                o1p_int row = ch->row0 + i;
                float dl = c->grad_logp[row], dhe = c->grad_entropy ? c->grad_entropy[row] : 0.0f;
                float l = c->lse[row], ez = l - c->entropy[row];
                float *xr = x + i * w;
                psum[ch->c0 + i] += row_grad(xr, b, c->inv_t, l, ez, dl, dhe, w, &bad);
                int64_t tgt = c->targets[row];
                if (tgt >= j0 && tgt < j1) xr[tgt - j0] += dl * c->inv_t;
            }
            if (c->grad_bias) column_sums(x, ch->n, w, acc);
            if (d == 0) continue;
            /* dH[rows] += G W[cols];  dW[cols] += G^T H[rows] */
            float *dst = dh + (c->dh_compact ? ch->c0 : ch->row0) * d;
            O1P_SGEMM(0, 0, ch->n, d, w, 1.0f, x, w, c->weight + j0 * d, d, 1.0f, dst, d);
            if (c->grad_weight)
                O1P_SGEMM(1, 0, w, d, ch->n, 1.0f, x, w, c->hidden + ch->row0 * d, d, 1.0f,
                          c->grad_weight + j0 * d, d);
        }
        if (c->grad_bias)
            for (o1p_int j = 0; j < w; j++) c->grad_bias[j0 + j] += (float)acc[j];
    }
    c->bad[k] += bad;
}

int fused_logprobs_backward(o1p_int N, o1p_int d, o1p_int V, const float *hidden,
                            const float *weight, const float *bias, const int64_t *targets,
                            int64_t ignore_index, float temperature, const float *lse,
                            const float *entropy, const float *grad_logp,
                            const float *grad_entropy, float *grad_hidden, float *grad_weight,
                            float *grad_bias) {
    int status;
    o1p_int nvalid = count_valid(N, targets, ignore_index, V, &status);
    if (status != O1P_OK || nvalid == 0) return status;
    if (d > O1P_BLAS_INT_MAX) return O1P_EVALUE;

    /* Enough rows: each thread owns a token group (its rows of grad_hidden)
     * and in round r works on vocabulary block (k + r) mod nt, so within a
     * round every block, i.e. every row range of grad_weight, has one owner
     * (a Latin square of token groups x vocabulary blocks). Few rows: the
     * threads split the vocabulary once and all but thread 0 add their
     * hidden gradient into private buffers ((nt - 1) x nvalid rows, with
     * nvalid < nt * FUSED_MIN_ROWS), summed afterwards. */
    int nt = threads_for(nvalid, V, d);
    int latin = nvalid >= (o1p_int)nt * FUSED_MIN_ROWS;
    int ngroups = latin ? nt : 1;
    plan_t plan = {0};
    float *zeros = NULL, *priv = NULL, **dh = (float **)malloc((size_t)nt * sizeof(float *));
    bwd_ctx c = {0};
    c.d = d, c.V = V, c.hidden = hidden, c.weight = weight, c.targets = targets;
    c.inv_t = 1.0f / temperature;
    c.lse = lse, c.entropy = entropy, c.grad_logp = grad_logp, c.grad_entropy = grad_entropy;
    c.grad_weight = grad_weight, c.grad_bias = grad_bias;
    c.plan = &plan, c.nblocks = nt, c.dh = dh, c.dh_compact = 0, c.psum_per_thread = !latin;
    size_t nslots = latin ? 1 : (size_t)nt;
    c.psum = (double *)calloc(nslots * (size_t)nvalid, sizeof(double));
    c.tiles = (float *)malloc((size_t)nt * FUSED_ROWS_MAX * FUSED_COLS * sizeof(float));
    c.colacc = (double *)malloc((size_t)nt * FUSED_COLS * sizeof(double));
    c.bad = (float *)calloc((size_t)nt, sizeof(float));
    c.bias = bias_or_zeros(bias, V, &zeros);
    status = O1P_ENOMEM;
    if (!dh || !c.psum || !c.tiles || !c.colacc || !c.bad || !c.bias) goto done;
    status = plan_make(&plan, N, targets, ignore_index, nvalid, ngroups);
    if (status != O1P_OK) goto done;
    status = O1P_ENOMEM;
    for (int k = 0; k < nt; k++) dh[k] = grad_hidden;
    if (!latin && nt > 1) {
        priv = (float *)calloc((size_t)(nt - 1) * (size_t)nvalid * (size_t)O1P_MAX(d, 1),
                               sizeof(float));
        if (priv == NULL) goto done;
        for (int k = 1; k < nt; k++) dh[k] = priv + (size_t)(k - 1) * nvalid * d;
        /* thread 0 adds straight into grad_hidden, so its rows are by row */
    }

    blas_serial(1);
    if (latin) {
        for (int r = 0; r < nt; r++) {
            O1P_OMP(parallel for num_threads(nt) schedule(static))
            for (int k = 0; k < nt; k++) backward_item(&c, k, k, (k + r) % nt);
        }
    } else {
        O1P_OMP(parallel for num_threads(nt) schedule(static))
        for (int k = 0; k < nt; k++) {
            bwd_ctx ck = c;
            ck.dh_compact = k > 0; /* private buffers are compact, grad_hidden by row */
            backward_item(&ck, k, 0, k);
        }
    }
    blas_serial(0);

    status = O1P_OK;
    for (int k = 0; k < nt; k++)
        if (c.bad[k] != 0.0f) status = O1P_EVALUE;
    /* the private hidden gradients, and the check that the saved statistics
     * belong to these inputs: sum_j exp(z_j - lse) must be 1 */
    for (o1p_int q = 0; q < plan.group_first[ngroups]; q++) {
        const chunk_t *ch = &plan.chunks[q];
        for (o1p_int i = 0; i < ch->n; i++) {
            o1p_int ci = ch->c0 + i;
            double ps = 0.0;
            for (size_t sl = 0; sl < nslots; sl++) ps += c.psum[sl * nvalid + ci];
            /* float32 logits of magnitude |lse| carry ~1e-7 |lse| of error,
             * which exp passes on: allow for it beyond the 1% of the check */
            double tol = 1e-2 + 1e-6 * fabs((double)lse[ch->row0 + i]);
            if (!(fabs(ps - 1.0) <= tol)) status = O1P_EVALUE;
            if (priv == NULL) continue;
            float *out = grad_hidden + (ch->row0 + i) * d;
            for (int k = 1; k < nt; k++) {
                const float *src = priv + ((size_t)(k - 1) * nvalid + ci) * d;
                for (o1p_int j = 0; j < d; j++) out[j] += src[j];
            }
        }
    }
done:
    plan_free(&plan);
    free(c.psum), free(c.tiles), free(c.colacc), free(c.bad), free(zeros), free(priv), free(dh);
    return status;
}
