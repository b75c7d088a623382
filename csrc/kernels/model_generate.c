/* model_generate.c: batched sampling with a KV cache for the model of
 * model.h. The prompts are run once as a packed batch (prefill, which fills
 * the cache), then one token per unfinished sequence per step (decode), with
 * finished sequences dropped from the batch. Randomness comes from a
 * counter-based generator keyed by (seed, sequence, step), so the stream of a
 * sequence does not depend on threads or batch composition.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "model.h"
#include "model_ops.h"
#include "vmath.h"

/* splitmix64's output function (Steele, Lea, Flood 2014): a bijective 64-bit
 * mixer; chained, it turns (seed, sequence, step) into independent draws. */
static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* Uniform double in [0, 1) from the top 53 bits. */
static double uniform01(uint64_t seed, uint64_t seq, uint64_t step) {
    uint64_t r = splitmix64(splitmix64(splitmix64(seed) + seq) + step);
    return (double)(r >> 11) * (1.0 / 9007199254740992.0);
}

typedef struct {
    float p;
    int32_t id;
} prob_entry;

/* descending probability, then ascending id: a total order, so the nucleus
 * is the same whatever qsort does with ties */
static int prob_desc(const void *a, const void *b) {
    const prob_entry *x = (const prob_entry *)a, *y = (const prob_entry *)b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

O1P_TARGET_CLONES
static void exp_shifted(o1p_int V, const float *z, float m, float inv_t, float *p) {
    for (o1p_int j = 0; j < V; j++) p[j] = o1p_expf((z[j] - m) * inv_t);
}

/* One draw from softmax(z / temperature) restricted to the top-p nucleus.
 * Returns -1 if the row has a NaN or +inf (no distribution). */
static int64_t sample_row(o1p_int V, const float *z, float temperature, float top_p, double u,
                          float *probs, prob_entry *sorted) {
    float m = z[0];
    o1p_int arg = 0;
    for (o1p_int j = 0; j < V; j++) {
        if (isnan(z[j]) || z[j] == INFINITY) return -1;
        if (z[j] > m) {
            m = z[j];
            arg = j;
        }
    }
    if (temperature <= 0.0f || m == -INFINITY) return arg; /* greedy: first maximum */
    exp_shifted(V, z, m, 1.0f / temperature, probs);
    double total = 0.0;
    for (o1p_int j = 0; j < V; j++) total += probs[j];
    if (top_p < 1.0f) {
        o1p_int n = 0;
        for (o1p_int j = 0; j < V; j++)
            if (probs[j] > 0.0f) {
                sorted[n].p = probs[j];
                sorted[n].id = (int32_t)j;
                n++;
            }
        qsort(sorted, (size_t)n, sizeof(prob_entry), prob_desc);
        /* the smallest head of the sorted list whose mass reaches top_p */
        double cum = 0.0, need = (double)top_p * total;
        o1p_int k = 0;
        while (k < n) {
            cum += sorted[k].p;
            k++;
            if (cum >= need) break;
        }
        double r = u * cum, acc = 0.0;
        for (o1p_int i = 0; i < k; i++) {
            acc += sorted[i].p;
            if (acc > r) return sorted[i].id;
        }
        return sorted[k - 1].id;
    }
    double r = u * total, acc = 0.0;
    o1p_int last = arg;
    for (o1p_int j = 0; j < V; j++) {
        if (probs[j] <= 0.0f) continue;
        acc += probs[j];
        last = j;
        if (acc > r) return j;
    }
    return last;
}

/* Buffers of one generate call. */
typedef struct {
    float *x, *xn, *qkv, *att, *gu, *act, *logits, *kc, *vc, *probs;
    prob_entry *sorted;
    int64_t *ids, *pos, *draw;
    o1p_int *off, *plen, *qrow0, *nq, *start, *krow0, *active;
} gen_buffers;

static void gen_free(gen_buffers *g) {
    free(g->x); free(g->xn); free(g->qkv); free(g->att); free(g->gu); free(g->act);
    free(g->logits); free(g->kc); free(g->vc); free(g->probs); free(g->sorted);
    free(g->ids); free(g->pos); free(g->draw);
    free(g->off); free(g->plen); free(g->qrow0); free(g->nq); free(g->start); free(g->krow0);
    free(g->active);
}

#define O1P_ALLOC(ptr, n) ((ptr) = malloc((size_t)((n) > 0 ? (n) : 1) * sizeof(*(ptr))))

/* Layers over `rows` tokens held in g->x (rows of g->ids at positions g->pos).
 * Sequence i of the nseq described by qrow0/nq/start owns cache slot
 * slot[i]; its new keys/values are written to the cache at their positions,
 * then attention reads the cache. */
static int run_layers(const model_config *c, const float *params, gen_buffers *g, o1p_int rows,
                      o1p_int nseq, const o1p_int *slot, o1p_int Bcap, o1p_int Tcap,
                      const model_rope *rope) {
    o1p_int d = c->hidden_size, F = c->intermediate_size, H = c->num_heads, D = d / H;
    for (o1p_int l = 0; l < c->num_layers; l++) {
        model_layer_offsets o = model_layer_offsets_of(c, l);
        float *kc = g->kc + l * Bcap * Tcap * d, *vc = g->vc + l * Bcap * Tcap * d;
        model_rmsnorm_forward(rows, d, g->x, params + o.ln1, c->rms_norm_eps, g->xn, NULL);
        O1P_SGEMM(0, 1, rows, 3 * d, d, 1.0f, g->xn, d, params + o.wqkv, d, 0.0f, g->qkv, 3 * d);
        model_bias_rope_forward(rows, d, H, g->qkv, params + o.bqkv, g->pos, rope);
        for (o1p_int i = 0; i < nseq; i++) {
            for (o1p_int r = 0; r < g->nq[i]; r++) {
                o1p_int row = g->qrow0[i] + r, t = g->pos[row];
                const float *src = g->qkv + row * 3 * d;
                memcpy(kc + (slot[i] * Tcap + t) * d, src + d, (size_t)d * sizeof(float));
                memcpy(vc + (slot[i] * Tcap + t) * d, src + 2 * d, (size_t)d * sizeof(float));
            }
        }
        int st = model_attention_forward(nseq, g->qrow0, g->nq, g->start, g->krow0, H, D, g->qkv,
                                         3 * d, kc, vc, d, g->att, d, NULL, 0);
        if (st != O1P_OK) return st;
        O1P_SGEMM(0, 1, rows, d, d, 1.0f, g->att, d, params + o.wo, d, 1.0f, g->x, d);
        model_rmsnorm_forward(rows, d, g->x, params + o.ln2, c->rms_norm_eps, g->xn, NULL);
        O1P_SGEMM(0, 1, rows, 2 * F, d, 1.0f, g->xn, d, params + o.wgu, d, 0.0f, g->gu, 2 * F);
        model_swiglu_forward(rows, F, g->gu, g->act);
        O1P_SGEMM(0, 1, rows, d, F, 1.0f, g->act, F, params + o.wdown, F, 1.0f, g->x, d);
    }
    return O1P_OK;
}

int model_generate(const model_config *c, const float *params, o1p_int B,
                   const int64_t *prompt_ids, const int64_t *offsets, o1p_int max_new,
                   float temperature, float top_p, const int64_t *stop_ids, o1p_int n_stop,
                   uint64_t seed, int64_t seq_index0, int64_t fill, int64_t *tokens,
                   int64_t *lengths, uint8_t *stopped) {
    o1p_int d = c->hidden_size, F = c->intermediate_size, H = c->num_heads, V = c->vocab_size;
    o1p_int L = c->num_layers;
    for (o1p_int i = 0; i < B * max_new; i++) tokens[i] = fill;
    for (o1p_int b = 0; b < B; b++) {
        lengths[b] = 0;
        stopped[b] = 0;
    }
    if (B == 0 || max_new == 0) return O1P_OK;
    gen_buffers g;
    memset(&g, 0, sizeof g);
    model_rope rope = {0, 0, NULL, NULL};
    int st = O1P_ENOMEM;
    o1p_int N = 0, maxp = 0;
    for (o1p_int b = 0; b < B; b++) {
        o1p_int n = offsets[b + 1] - offsets[b];
        if (n < 1) return O1P_EVALUE;
        N += n;
        maxp = O1P_MAX(maxp, n);
    }
    o1p_int Tcap = maxp + max_new, rows = O1P_MAX(N, B);
    if (Tcap > c->max_positions) return O1P_EVALUE;
    int nt_max = o1p_get_num_threads();
    if (!O1P_ALLOC(g.x, rows * d) || !O1P_ALLOC(g.xn, rows * d) || !O1P_ALLOC(g.qkv, rows * 3 * d) ||
        !O1P_ALLOC(g.att, rows * d) || !O1P_ALLOC(g.gu, rows * 2 * F) || !O1P_ALLOC(g.act, rows * F) ||
        !O1P_ALLOC(g.logits, B * V) || !O1P_ALLOC(g.kc, L * B * Tcap * d) ||
        !O1P_ALLOC(g.vc, L * B * Tcap * d) || !O1P_ALLOC(g.probs, nt_max * V) ||
        !O1P_ALLOC(g.sorted, nt_max * V) || !O1P_ALLOC(g.ids, rows) || !O1P_ALLOC(g.pos, rows) ||
        !O1P_ALLOC(g.draw, B) || !O1P_ALLOC(g.off, B + 1) || !O1P_ALLOC(g.plen, B) ||
        !O1P_ALLOC(g.qrow0, B) || !O1P_ALLOC(g.nq, B) || !O1P_ALLOC(g.start, B) ||
        !O1P_ALLOC(g.krow0, B) || !O1P_ALLOC(g.active, B))
        goto done;
    st = model_rope_init(&rope, Tcap, d / H, c->rope_theta);
    if (st != O1P_OK) goto done;

    /* prefill: every prompt token, packed; sequence b uses cache slot b */
    g.off[0] = 0;
    for (o1p_int b = 0; b < B; b++) {
        g.plen[b] = offsets[b + 1] - offsets[b];
        g.off[b + 1] = g.off[b] + g.plen[b];
        g.qrow0[b] = g.off[b];
        g.nq[b] = g.plen[b];
        g.start[b] = 0;
        g.krow0[b] = b * Tcap;
        g.active[b] = b;
        for (o1p_int t = 0; t < g.plen[b]; t++) {
            g.ids[g.off[b] + t] = prompt_ids[offsets[b] + t];
            g.pos[g.off[b] + t] = t;
        }
    }
    for (o1p_int n = 0; n < N; n++) memcpy(g.x + n * d, params + g.ids[n] * d, (size_t)d * sizeof(float));
    st = run_layers(c, params, &g, N, B, g.active, B, Tcap, &rope);
    if (st != O1P_OK) goto done;
    /* hidden state of each prompt's last token -> row b */
    for (o1p_int b = 0; b < B; b++)
        memmove(g.x + b * d, g.x + (g.off[b] + g.plen[b] - 1) * d, (size_t)d * sizeof(float));

    const float *norm_w = params + model_norm_offset(c);
    o1p_int nact = B;
    for (o1p_int s = 0; s < max_new; s++) {
        /* logits of the active rows */
        model_rmsnorm_forward(nact, d, g.x, norm_w, c->rms_norm_eps, g.xn, NULL);
        O1P_SGEMM(0, 1, nact, V, d, 1.0f, g.xn, d, params, d, 0.0f, g.logits, V);
        int nt = o1p_threads_for(nact * V, (o1p_int)1 << 14);
        if (nt > nt_max) nt = nt_max;
        (void)nt;
        O1P_OMP(parallel for num_threads(nt) schedule(static))
        for (o1p_int i = 0; i < nact; i++) {
            int tid = 0;
#ifdef _OPENMP
            tid = omp_get_thread_num();
#endif
            o1p_int b = g.active[i];
            double u = uniform01(seed, (uint64_t)(seq_index0 + b), (uint64_t)s);
            g.draw[i] = sample_row(V, g.logits + i * V, temperature, top_p, u, g.probs + tid * V,
                                   g.sorted + tid * V);
        }
        /* record, then keep the unfinished sequences (in order) */
        o1p_int keep = 0;
        for (o1p_int i = 0; i < nact; i++) {
            o1p_int b = g.active[i];
            int64_t tok = g.draw[i];
            if (tok < 0) {
                st = O1P_EVALUE;
                goto done;
            }
            tokens[b * max_new + s] = tok;
            lengths[b] = s + 1;
            int stop = 0;
            for (o1p_int k = 0; k < n_stop; k++) stop |= stop_ids[k] == tok;
            stopped[b] = (uint8_t)stop;
            if (!stop && s + 1 < max_new) {
                g.active[keep] = b;
                g.ids[keep] = tok;
                g.pos[keep] = g.plen[b] + s;
                keep++;
            }
        }
        nact = keep;
        if (nact == 0) break;
        /* decode: one new token per active sequence */
        for (o1p_int i = 0; i < nact; i++) {
            g.qrow0[i] = i;
            g.nq[i] = 1;
            g.start[i] = g.pos[i];
            g.krow0[i] = g.active[i] * Tcap;
            memcpy(g.x + i * d, params + g.ids[i] * d, (size_t)d * sizeof(float));
        }
        st = run_layers(c, params, &g, nact, nact, g.active, B, Tcap, &rope);
        if (st != O1P_OK) goto done;
    }
    st = O1P_OK;
done:
    model_rope_free(&rope);
    gen_free(&g);
    return st;
}
