/* kernels_driver.c: every C kernel family (rewards, ppo, logprob, fused,
 * model, grader) called without Python on exact-size heap buffers, over
 * small shapes including 1 and 0 rows, so valgrind memcheck sees each read
 * and write (run.sh builds and runs it). Prints a checksum per family; exits
 * non-zero when a kernel reports an unexpected status. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fused.h"
#include "grader.h"
#include "logprob.h"
#include "model.h"
#include "ppo.h"
#include "rewards.h"

void o1p_runtime_init(void);
void o1p_set_num_threads(int n);

static uint64_t rng_state = 12345;
static double urand(void) { /* xorshift64*: deterministic inputs */
    rng_state ^= rng_state >> 12, rng_state ^= rng_state << 25, rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}
static float *frand(o1p_int n, double scale) {
    float *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    for (o1p_int i = 0; i < n; i++) p[i] = (float)((urand() * 2 - 1) * scale);
    return p;
}
static int64_t *irand(o1p_int n, int64_t hi) {
    int64_t *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    for (o1p_int i = 0; i < n; i++) p[i] = (int64_t)(urand() * hi);
    return p;
}
static double sumf(const float *p, o1p_int n) {
    double s = 0;
    for (o1p_int i = 0; i < n; i++) s += p[i];
    return s;
}
static int failures = 0;
#define CHECK(st) do { int s_ = (st); if (s_ != O1P_OK) { fprintf(stderr, "%s:%d status %d\n", __FILE__, __LINE__, s_); failures++; } } while (0)

static void rewards(o1p_int S) {
    double *len = malloc(S * sizeof *len), *cor = malloc(S * sizeof *cor), *out = malloc(S * sizeof *out);
    int64_t *ids = irand(S, 3), *code = malloc(S * sizeof *code), *uniq = malloc(S * sizeof *uniq);
    for (o1p_int i = 0; i < S; i++) len[i] = 1 + 100 * urand(), cor[i] = urand() < 0.5;
    o1p_int G = 0;
    CHECK(rewards_group_codes(S, ids, code, uniq, &G));
    double *ml = malloc(G * sizeof *ml), *acc = malloc(G * sizeof *acc);
    int64_t *cnt = malloc(G * sizeof *cnt);
    CHECK(rewards_group_stats(S, len, cor, code, G, ml, acc, cnt));
    double *rml = malloc(S * sizeof *rml), *racc = malloc(S * sizeof *racc);
    for (o1p_int i = 0; i < S; i++) rml[i] = ml[code[i]], racc[i] = acc[code[i]];
    rewards_length_harmonizing(S, len, cor, rml, racc, 2.0, out);
    double *w = malloc(S * sizeof *w);
    CHECK(rewards_harmonize(S, out, 1, -2.0, 4.0, REWARDS_NORM_GROUP, code, G, w));
    double s = 0;
    for (o1p_int i = 0; i < S; i++) s += w[i];
    printf("rewards S=%lld G=%lld sum=%.6g\n", (long long)S, (long long)G, s);
    free(len), free(cor), free(out), free(ids), free(code), free(uniq), free(ml), free(acc), free(cnt);
    free(rml), free(racc), free(w);
}

static void ppo(o1p_int B, o1p_int T) {
    float *lp = frand(B * T, 2), *ref = frand(B * T, 2), *grad = malloc((B * T + 1) * sizeof *grad);
    uint8_t *mask = malloc(B * T + 1);
    double *adv = malloc((B + 1) * sizeof *adv), *seq = malloc((B + 1) * sizeof *seq);
    for (o1p_int i = 0; i < B * T; i++) mask[i] = urand() < 0.8;
    for (o1p_int b = 0; b < B; b++) adv[b] = urand() - 0.5;
    o1p_int bad = -1;
    CHECK(ppo_sequence_logprobs_forward(B, T, ref, mask, PPO_REDUCE_MEAN, seq, &bad));
    ppo_sequence_logprobs_backward(B, T, adv, mask, PPO_REDUCE_SUM, grad);
    double s = sumf(grad, B * T);
    for (int agg = 0; agg <= 5; agg++) {
        ppo_clip_config c = {agg < 2 ? PPO_RATIO_SEQUENCE_MEAN : PPO_RATIO_TOKEN, agg, 0.2, 0.28,
                             agg == 3 ? 3.0 : 0.0, agg == 4 ? 20.0 : 0.0};
        ppo_clip_result r;
        CHECK(ppo_clip_loss_forward_backward(&c, B, T, lp, ref, seq, adv, mask, grad, &r));
        s += r.loss + sumf(grad, B * T);
    }
    printf("ppo B=%lld T=%lld sum=%.6g\n", (long long)B, (long long)T, s);
    free(lp), free(ref), free(grad), free(mask), free(adv), free(seq);
}

static void logprob(o1p_int N, o1p_int V) {
    float *x = frand(N * V, 8), *lp = frand(N, 1), *ent = frand(N, 1), *lse = frand(N, 1);
    float *g = frand(N, 1), *ge = frand(N, 1), *dx = frand(N * V, 1);
    int64_t *t = irand(N, V);
    if (N) t[0] = -100;
    o1p_int bad = -1;
    CHECK(logprob_forward(N, V, x, t, -100, 0.7, lp, ent, lse, &bad));
    CHECK(logprob_backward(N, V, x, t, -100, 0.7, lse, g, ge, dx, 0, &bad));
    CHECK(logprob_backward(N, V, x, t, -100, 0.7, lse, g, ge, dx, 1, &bad));
    printf("logprob N=%lld V=%lld sum=%.6g\n", (long long)N, (long long)V, sumf(lp, N) + sumf(dx, N * V));
    free(x), free(lp), free(ent), free(lse), free(g), free(ge), free(dx), free(t);
}

static void fused(o1p_int N, o1p_int d, o1p_int V) {
    float *h = frand(N * d, 1), *w = frand(V * d, 1), *bias = frand(V, 1);
    float *lp = frand(N, 1), *ent = frand(N, 1), *lse = frand(N, 1), *g = frand(N, 1), *ge = frand(N, 1);
    float *gh = calloc(N * d + 1, sizeof *gh), *gw = calloc(V * d + 1, sizeof *gw), *gb = calloc(V + 1, sizeof *gb);
    int64_t *t = irand(N, V);
    if (N) t[N - 1] = -100;
    CHECK(fused_logprobs_forward(N, d, V, h, w, bias, t, -100, 1.3f, lp, ent, lse));
    CHECK(fused_logprobs_backward(N, d, V, h, w, bias, t, -100, 1.3f, lse, ent, g, ge, gh, gw, gb));
    CHECK(fused_logprobs_forward(N, d, V, h, w, NULL, t, -100, 1.0f, lp, ent, lse));
    printf("fused N=%lld d=%lld V=%lld sum=%.6g\n", (long long)N, (long long)d, (long long)V,
           sumf(lp, N) + sumf(gh, N * d) + sumf(gw, V * d) + sumf(gb, V));
    free(h), free(w), free(bias), free(lp), free(ent), free(lse), free(g), free(ge), free(gh), free(gw), free(gb);
    free(t);
}

static void model(int threads) {
    model_config c = {11, 8, 12, 2, 2, 16, 1e-6f, 1e4f};
    CHECK(model_config_check(&c));
    o1p_int P = model_num_params(&c), B = 3, T = 7, N = 0;
    float *params = frand(P, 0.5), *grads = calloc(P, sizeof *grads);
    float *m1 = calloc(P, sizeof *m1), *m2 = calloc(P, sizeof *m2);
    int64_t *ids = irand(B * T, 11), *tg = irand(B * T, 11), lengths[3] = {7, 3, 1};
    for (int b = 0; b < 3; b++) N += lengths[b];
    tg[2] = -100;
    o1p_int A = model_arena_floats(&c, N, threads);
    float *arena = malloc(A * sizeof *arena), *lp = malloc(B * T * sizeof *lp), *ent = malloc(B * T * sizeof *ent);
    float *hid = malloc(B * T * c.hidden_size * sizeof *hid), *g = frand(B * T, 1);
    CHECK(model_forward(&c, params, B, T, ids, lengths, tg, -100, 1.0f, arena, lp, ent, hid));
    CHECK(model_backward(&c, params, B, T, ids, lengths, tg, -100, 1.0f, arena, A, g, grads));
    double norm = 0;
    CHECK(model_adamw_step(P, params, grads, m1, m2, 1, 1e-3, 0.9, 0.999, 1e-8, 0.01, 1.0, &norm));
    int64_t pid[5] = {1, 2, 3, 4, 5}, off[3] = {0, 3, 5}, stop[1] = {4}, tok[2 * 6], glen[2];
    uint8_t stopped[2];
    o1p_int W = model_generate_work_floats(&c, 2, 5, 3, 6);
    float *work = malloc(W * sizeof *work);
    CHECK(model_generate(&c, params, 2, pid, off, 6, 0.8f, 0.9f, stop, 1, 7, 0, -1, work, W, tok, glen, stopped));
    CHECK(model_generate(&c, params, 2, pid, off, 6, 0.0f, 1.0f, NULL, 0, 7, 0, -1, NULL, 0, tok, glen, stopped));
    printf("model threads=%d sum=%.6g norm=%.6g grad_norm=%.6g tokens=%lld\n", threads,
           sumf(lp, B * T) + sumf(hid, B * T * c.hidden_size), norm, model_grad_norm(P, grads),
           (long long)(tok[0] + tok[6]));
    free(params), free(grads), free(m1), free(m2), free(ids), free(tg), free(arena), free(lp), free(ent);
    free(hid), free(g), free(work);
}

static void grader(void) {
    static const char *cases[][2] = {
        {"The answer is \\boxed{\\frac{1}{2}}.", "0.5"}, {"#### 1,234", "1234"}, {"$x = 3$", "3"},
        {"\\boxed{(1, 2]}", "(1,2]"}, {"\\boxed{2\\sqrt{2}}", "\\sqrt{8}"}, {"\\boxed{x^2+2x+1}", "(x+1)^2"},
        {"\\boxed{\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}}", "[[1,2],[3,4]]"}, {"\\boxed{", "1"},
        {"{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{", "}"}, {"", ""},
        {"\\boxed{10\\%}", "0.1"}, {"\\boxed{\\text{(A)}}", "A"}, {"1e400", "inf"}, {"\xff\xfe\x00", "\xc3"}};
    grader_ctx *ctx = grader_ctx_new();
    grader_opts o;
    grader_opts_default(&o);
    int total = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        o1p_int n = (o1p_int)strlen(cases[i][0]), ng = (o1p_int)strlen(cases[i][1]);
        char *text = malloc(n + 1), *gold = malloc(ng + 1), *out = malloc(n + 1), *norm = malloc(2 * n + 16);
        memcpy(text, cases[i][0], n), memcpy(gold, cases[i][1], ng);
        for (int m = 0; m < GRADER_EXTRACT_NMODES; m++) {
            if (m == GRADER_EXTRACT_ALL_BOXED) continue; /* may be longer than the text */
            o1p_int olen = 0;
            int found = grader_extract(text, n, &m, 1, out, &olen);
            if (found) total += grader_compare(ctx, out, olen, gold, ng, &o);
        }
        total += grader_compare(NULL, text, n, gold, ng, &o);
        total += (int)(grader_normalize(ctx, text, n, norm, 2 * n + 16) >= 0);
        free(text), free(gold), free(out), free(norm);
    }
    grader_ctx_free(ctx);
    printf("grader total=%d\n", total);
}

int main(void) {
    o1p_runtime_init();
    o1p_set_num_threads(1);
    for (o1p_int S = 1; S <= 40; S += 13) rewards(S);
    ppo(1, 1), ppo(4, 9), ppo(0, 5);
    logprob(1, 1), logprob(5, 33), logprob(0, 7), logprob(70, 700);
    fused(1, 1, 1), fused(7, 5, 19), fused(0, 3, 4), fused(300, 16, 1500);
    model(1);
    o1p_set_num_threads(2);
    model(2), fused(300, 16, 1500), logprob(70, 700);
    grader();
    if (failures) fprintf(stderr, "%d kernel calls failed\n", failures);
    return failures ? 1 : 0;
}
