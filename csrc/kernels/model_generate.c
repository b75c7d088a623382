/* model_generate.c: batched sampling with a KV cache for the model of
 * model.h. The prompts run once as a packed batch (prefill, which fills the
 * cache), then one token per unfinished sequence per step (decode), with
 * finished sequences dropped from the batch. Each step is one parallel region:
 * row-wise work by groups of sequences, matmuls by blocks of output columns
 * (so a weight matrix is packed once per step). Randomness comes from a
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

/* One draw from softmax(z / temperature) restricted to the top-p nucleus
 * (temperature 0: the first maximum). Returns -1 if a logit is NaN or +inf. */
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
    if (temperature <= 0.0f || m == -INFINITY) return arg;
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

/* State of one generate call. The current list holds nlist sequences:
 * seq[i] (the prompt index, also its KV-cache slot) with n[i] new tokens at
 * positions start[i].. in rows row0[i]..row0[i]+n[i] of the row buffers. */
typedef struct {
    const model_config *c;
    const float *params;
    const model_rope *rope;
    o1p_int B, Tcap, nt;
    float temperature, top_p;
    uint64_t seed;
    int64_t seq_index0;
    float *x, *xn, *qkv, *att, *gu, *act, *logits, *kc, *vc, *S, *probs;
    prob_entry *sorted;
    int64_t *ids, *pos, *draw;
    o1p_int *seq, *n, *start, *row0, *plen, *cut;
} gen_state;

static void gen_free(gen_state *g) {
    free(g->sorted);
    free(g->ids); free(g->pos); free(g->draw);
    free(g->seq); free(g->n); free(g->start); free(g->row0); free(g->plen); free(g->cut);
}

/* Carve the float buffers (activation rows, logits, KV cache, per-thread
 * scratch) from base (NULL: only count). Returns the floats needed, or -1
 * when that number overflows int64 (checked arithmetic, o1p.h). */
static o1p_int gen_carve(const model_config *c, o1p_int B, o1p_int rows, o1p_int Tcap, o1p_int nt,
                         float *base, gen_state *g) {
    o1p_int d = c->hidden_size, F = c->intermediate_size, V = c->vocab_size, L = c->num_layers;
    o1p_int off = 0;
    int ovf = 0;
#define O1P_MUL(a, b) o1p_size_mul((a), (b), &ovf)
#define O1P_TAKE(ptr, n)                          \
    do {                                          \
        o1p_int n_ = (n);                         \
        (ptr) = base && !ovf ? base + off : NULL; \
        off = o1p_size_add(off, n_, &ovf);        \
    } while (0)
    O1P_TAKE(g->x, O1P_MUL(rows, d));
    O1P_TAKE(g->xn, O1P_MUL(rows, d));
    O1P_TAKE(g->qkv, O1P_MUL(rows, 3 * d));
    O1P_TAKE(g->att, O1P_MUL(rows, d));
    O1P_TAKE(g->gu, O1P_MUL(rows, 2 * F));
    O1P_TAKE(g->act, O1P_MUL(rows, F));
    O1P_TAKE(g->logits, O1P_MUL(B, V));
    O1P_TAKE(g->kc, O1P_MUL(O1P_MUL(O1P_MUL(L, B), Tcap), d));
    O1P_TAKE(g->vc, O1P_MUL(O1P_MUL(O1P_MUL(L, B), Tcap), d));
    O1P_TAKE(g->S, O1P_MUL(O1P_MUL(nt, O1P_ATTN_QBLOCK), Tcap));
    O1P_TAKE(g->probs, O1P_MUL(nt, V));
#undef O1P_TAKE
#undef O1P_MUL
    return ovf ? -1 : off;
}

o1p_int model_generate_work_floats(const model_config *c, o1p_int B, o1p_int n_prompt_tokens,
                                   o1p_int max_prompt, o1p_int max_new) {
    gen_state g;
    int ovf = 0;
    o1p_int Tcap = o1p_size_add(max_prompt, max_new, &ovf);
    if (ovf || B < 0 || n_prompt_tokens < 0) return -1;
    return gen_carve(c, B, O1P_MAX(n_prompt_tokens, B), Tcap, o1p_get_num_threads(), NULL, &g);
}

#define O1P_ALLOC(ptr, count) ((ptr) = malloc((size_t)((count) > 0 ? (count) : 1) * sizeof(*(ptr))))

/* act[r, j] = silu(gate) * up for columns j in c0..c1 of every row. */
O1P_TARGET_CLONES
static void swiglu_cols(o1p_int R, o1p_int F, o1p_int c0, o1p_int c1, const float *gu, float *act) {
    for (o1p_int r = 0; r < R; r++) {
        const float *g = gu + r * 2 * F, *u = g + F;
        float *a = act + r * F;
        for (o1p_int j = c0; j < c1; j++) a[j] = g[j] / (1.0f + o1p_expf(-g[j])) * u[j];
    }
}

/* Columns c0..c1 of N owned by thread tid of nth (multiples of 16 floats). */
static void col_range(o1p_int N, int nth, int tid, o1p_int *c0, o1p_int *c1) {
    *c0 = tid == 0 ? 0 : (N * tid / nth) / 16 * 16;
    *c1 = tid == nth - 1 ? N : (N * (tid + 1) / nth) / 16 * 16;
    if (*c1 < *c0) *c1 = *c0;
}

/* Rows of group gi of the current list: sequences cut[gi]..cut[gi+1]. */
static void group_rows(const gen_state *g, int gi, o1p_int *s0, o1p_int *s1, o1p_int *r0, o1p_int *nr) {
    *s0 = g->cut[gi];
    *s1 = g->cut[gi + 1];
    *r0 = g->row0[*s0];
    *nr = g->row0[*s1 - 1] + g->n[*s1 - 1] - *r0;
}

/* Rotary, KV-cache write and attention of group gi at layer l. */
static void group_attention(const gen_state *g, int gi, o1p_int l, const model_layer_offsets *o) {
    const model_config *c = g->c;
    o1p_int d = c->hidden_size, H = c->num_heads, D = d / H, Tcap = g->Tcap;
    o1p_int s0, s1, r0, nr;
    group_rows(g, gi, &s0, &s1, &r0, &nr);
    float *kc = g->kc + l * g->B * Tcap * d, *vc = g->vc + l * g->B * Tcap * d;
    float *S = g->S + (size_t)gi * O1P_ATTN_QBLOCK * (size_t)Tcap;
    model_bias_rope_rows(nr, d, H, g->qkv + r0 * 3 * d, g->params + o->bqkv, g->pos + r0, g->rope);
    for (o1p_int i = s0; i < s1; i++) {
        /* cache of a sequence: [H][Tcap][D], each head's keys contiguous */
        float *ks = kc + g->seq[i] * Tcap * d, *vs = vc + g->seq[i] * Tcap * d;
        for (o1p_int r = 0; r < g->n[i]; r++) {
            o1p_int row = g->row0[i] + r, t = g->pos[row];
            const float *src = g->qkv + row * 3 * d;
            for (o1p_int h = 0; h < H; h++) {
                memcpy(ks + (h * Tcap + t) * D, src + d + h * D, (size_t)D * sizeof(float));
                memcpy(vs + (h * Tcap + t) * D, src + 2 * d + h * D, (size_t)D * sizeof(float));
            }
        }
        for (o1p_int h = 0; h < H; h++)
            model_attention_head(g->n[i], g->start[i], D, g->qkv + g->row0[i] * 3 * d + h * D, 3 * d,
                                 ks + h * Tcap * D, vs + h * Tcap * D, D, g->att + g->row0[i] * d + h * D,
                                 d, NULL, S);
    }
}

/* Final norm of each sequence's last row of group gi (packed to xn rows
 * r0..), logits with the tied embedding, one draw per sequence. */
static void group_sample(const gen_state *g, int gi, int64_t step) {
    const model_config *c = g->c;
    o1p_int d = c->hidden_size, V = c->vocab_size;
    o1p_int s0, s1, r0, nr;
    group_rows(g, gi, &s0, &s1, &r0, &nr);
    const float *norm_w = g->params + model_norm_offset(c);
    for (o1p_int i = s0; i < s1; i++) {
        o1p_int last = g->row0[i] + g->n[i] - 1;
        model_rmsnorm_rows(1, d, g->x + last * d, norm_w, c->rms_norm_eps, g->xn + (r0 + i - s0) * d, NULL);
    }
    float *logits = g->logits + s0 * V;
    O1P_SGEMM(0, 1, s1 - s0, V, d, 1.0f, g->xn + r0 * d, d, g->params, d, 0.0f, logits, V);
    for (o1p_int i = s0; i < s1; i++) {
        double u = uniform01(g->seed, (uint64_t)(g->seq_index0 + g->seq[i]), (uint64_t)step);
        g->draw[i] = sample_row(V, logits + (i - s0) * V, g->temperature, g->top_p, u,
                                g->probs + (size_t)gi * V, g->sorted + (size_t)gi * V);
    }
}

/* One step (the prefill, or one decoding step) of the current list of
 * nlist sequences on nt threads. Every thread does the row-wise work
 * (norms, rotary, KV cache, attention, sampling) of its groups of sequences
 * (cut[0..groups]) and one block of output columns of every matmul over all
 * R rows, so each weight matrix is packed once per step rather than once per
 * thread; barriers separate the phases. Draws land in draw[i]. */
static void step_all(const gen_state *g, o1p_int nlist, int nt, int groups, int64_t step) {
    const model_config *c = g->c;
    const float *P = g->params;
    o1p_int d = c->hidden_size, F = c->intermediate_size;
    o1p_int R = g->row0[nlist - 1] + g->n[nlist - 1];
    float eps = c->rms_norm_eps;
    (void)nt;
    O1P_OMP(parallel num_threads(nt))
    {
        int tid = 0, nth = 1;
#ifdef _OPENMP
        tid = omp_get_thread_num();
        nth = omp_get_num_threads();
#endif
        o1p_int e0, e1, q0, q1, f0, f1, s0, s1, r0, nr; /* columns of d, 3d, F; rows */
        col_range(d, nth, tid, &e0, &e1);
        col_range(3 * d, nth, tid, &q0, &q1);
        col_range(F, nth, tid, &f0, &f1);
        for (int gi = tid; gi < groups; gi += nth) {
            group_rows(g, gi, &s0, &s1, &r0, &nr);
            for (o1p_int r = r0; r < r0 + nr; r++)
                memcpy(g->x + r * d, P + g->ids[r] * d, (size_t)d * sizeof(float));
        }
        for (o1p_int l = 0; l < c->num_layers; l++) {
            model_layer_offsets o = model_layer_offsets_of(c, l);
            for (int gi = tid; gi < groups; gi += nth) {
                group_rows(g, gi, &s0, &s1, &r0, &nr);
                model_rmsnorm_rows(nr, d, g->x + r0 * d, P + o.ln1, eps, g->xn + r0 * d, NULL);
            }
            O1P_OMP(barrier)
            if (q1 > q0)
                O1P_SGEMM(0, 1, R, q1 - q0, d, 1.0f, g->xn, d, P + o.wqkv + q0 * d, d, 0.0f, g->qkv + q0, 3 * d);
            O1P_OMP(barrier)
            for (int gi = tid; gi < groups; gi += nth) group_attention(g, gi, l, &o);
            O1P_OMP(barrier)
            if (e1 > e0) /* residual: x += att Wo^T, this thread's columns */
                O1P_SGEMM(0, 1, R, e1 - e0, d, 1.0f, g->att, d, P + o.wo + e0 * d, d, 1.0f, g->x + e0, d);
            O1P_OMP(barrier)
            for (int gi = tid; gi < groups; gi += nth) {
                group_rows(g, gi, &s0, &s1, &r0, &nr);
                model_rmsnorm_rows(nr, d, g->x + r0 * d, P + o.ln2, eps, g->xn + r0 * d, NULL);
            }
            O1P_OMP(barrier)
            if (f1 > f0) { /* the same columns of gate and up, so SwiGLU needs no barrier */
                O1P_SGEMM(0, 1, R, f1 - f0, d, 1.0f, g->xn, d, P + o.wgu + f0 * d, d, 0.0f, g->gu + f0, 2 * F);
                O1P_SGEMM(0, 1, R, f1 - f0, d, 1.0f, g->xn, d, P + o.wgu + (F + f0) * d, d, 0.0f,
                          g->gu + F + f0, 2 * F);
                swiglu_cols(R, F, f0, f1, g->gu, g->act);
            }
            O1P_OMP(barrier)
            if (e1 > e0)
                O1P_SGEMM(0, 1, R, e1 - e0, F, 1.0f, g->act, F, P + o.wdown + e0 * F, F, 1.0f, g->x + e0, d);
            O1P_OMP(barrier)
        }
        for (int gi = tid; gi < groups; gi += nth) group_sample(g, gi, step);
    }
}

int model_generate(const model_config *c, const float *params, o1p_int B,
                   const int64_t *prompt_ids, const int64_t *offsets, o1p_int max_new,
                   float temperature, float top_p, const int64_t *stop_ids, o1p_int n_stop,
                   uint64_t seed, int64_t seq_index0, int64_t fill, float *work,
                   o1p_int work_floats, int64_t *tokens, int64_t *lengths, uint8_t *stopped) {
    o1p_int d = c->hidden_size, H = c->num_heads, V = c->vocab_size;
    for (o1p_int i = 0; i < B * max_new; i++) tokens[i] = fill;
    for (o1p_int b = 0; b < B; b++) {
        lengths[b] = 0;
        stopped[b] = 0;
    }
    if (B == 0 || max_new == 0) return O1P_OK;
    o1p_int N = 0, maxp = 0;
    if (offsets[0] != 0) return O1P_EVALUE;
    for (o1p_int b = 0; b < B; b++) {
        o1p_int np;
        if (o1p_sub_overflow(offsets[b + 1], offsets[b], &np) || np < 1 || np > c->max_positions)
            return O1P_EVALUE;
        N += np; /* <= B * max_positions: no overflow */
        maxp = O1P_MAX(maxp, np);
    }
    o1p_int Tcap = maxp + max_new, rows = O1P_MAX(N, B);
    if (max_new > c->max_positions || Tcap > c->max_positions) return O1P_EVALUE;
    gen_state g;
    memset(&g, 0, sizeof g);
    g.c = c;
    g.params = params;
    g.B = B;
    g.Tcap = Tcap;
    g.temperature = temperature;
    g.top_p = top_p;
    g.seed = seed;
    g.seq_index0 = seq_index0;
    g.nt = o1p_get_num_threads();
    model_rope rope = {0, 0, NULL, NULL};
    g.rope = &rope;
    int st = O1P_ENOMEM;
    o1p_int nt = g.nt;
    float *own = NULL; /* used when the caller's workspace is missing or too small */
    o1p_int need = gen_carve(c, B, rows, Tcap, nt, NULL, &g);
    if (need < 0 || (uint64_t)need > SIZE_MAX / sizeof(float)) goto done; /* O1P_ENOMEM */
    if (work == NULL || work_floats < need) {
        own = (float *)malloc((size_t)need * sizeof(float));
        if (own == NULL) goto done;
        work = own;
    }
    gen_carve(c, B, rows, Tcap, nt, work, &g);
    if (!O1P_ALLOC(g.sorted, nt * V) || !O1P_ALLOC(g.ids, rows) ||
        !O1P_ALLOC(g.pos, rows) || !O1P_ALLOC(g.draw, B) || !O1P_ALLOC(g.seq, B) ||
        !O1P_ALLOC(g.n, B) || !O1P_ALLOC(g.start, B) || !O1P_ALLOC(g.row0, B) ||
        !O1P_ALLOC(g.plen, B) || !O1P_ALLOC(g.cut, B + 2))
        goto done;
    st = model_rope_init(&rope, Tcap, d / H, c->rope_theta);
    if (st != O1P_OK) goto done;

    /* prefill list: every prompt, packed */
    o1p_int nlist = B;
    /* offsets and ids are read again here: re-checked where used (the
     * buffers were sized from the pass above, ids index the embedding) */
    for (o1p_int b = 0, r = 0; b < B; b++) {
        g.plen[b] = offsets[b + 1] - offsets[b];
        if (g.plen[b] < 1 || g.plen[b] > maxp || g.plen[b] > N - r) {
            st = O1P_EVALUE;
            goto done;
        }
        g.seq[b] = b;
        g.n[b] = g.plen[b];
        g.start[b] = 0;
        g.row0[b] = r;
        for (o1p_int t = 0; t < g.plen[b]; t++, r++) {
            int64_t id = prompt_ids[r]; /* = offsets[b] + t when offsets hold still */
            if (id < 0 || id >= V) {
                st = O1P_EINDEX;
                goto done;
            }
            g.ids[r] = id;
            g.pos[r] = t;
        }
    }
    for (o1p_int s = 0; s < max_new && nlist > 0; s++) {
        o1p_int work = 0;
        for (o1p_int i = 0; i < nlist; i++) work += g.n[i];
        int want = model_threads_for_tokens(c, work);
        if (want > nt) want = (int)nt;
        /* rows by groups of sequences (as balanced as they can be), matmul
         * columns over all `want` threads */
        int groups = model_partition(c, nlist, g.n, g.start, want, g.cut);
        o1p_blas_serial_begin();
        step_all(&g, nlist, want, groups, s);
        o1p_blas_serial_end();
        /* record the draws; the unfinished sequences form the next list */
        o1p_int keep = 0;
        for (o1p_int i = 0; i < nlist; i++) {
            o1p_int b = g.seq[i];
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
                g.seq[keep] = b;
                g.n[keep] = 1;
                g.start[keep] = g.plen[b] + s;
                g.row0[keep] = keep;
                g.ids[keep] = tok;
                g.pos[keep] = g.plen[b] + s;
                keep++;
            }
        }
        nlist = keep;
    }
    st = O1P_OK;
done:
    model_rope_free(&rope);
    gen_free(&g);
    free(own);
    return st;
}
