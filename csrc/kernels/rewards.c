/* rewards.c: reference statistics, the length-harmonizing reward and the
 * public code's clip + z-normalisation of the weights (see rewards.h). */
#include "rewards.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t id;
    int64_t pos;
} id_pos;

static int cmp_id_pos(const void *a, const void *b) {
    const id_pos *x = (const id_pos *)a, *y = (const id_pos *)b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return x->pos < y->pos ? -1 : (x->pos > y->pos);
}

int rewards_group_codes(o1p_int S, const int64_t *ids, int64_t *code, int64_t *uniq, o1p_int *G) {
    *G = 0;
    if (S == 0) return O1P_OK;
    id_pos *tmp = (id_pos *)malloc((size_t)S * sizeof(id_pos));
    if (tmp == NULL) return O1P_ENOMEM;
    for (o1p_int i = 0; i < S; i++) {
        tmp[i].id = ids[i];
        tmp[i].pos = i;
    }
    qsort(tmp, (size_t)S, sizeof(id_pos), cmp_id_pos);
    o1p_int g = -1;
    for (o1p_int i = 0; i < S; i++) {
        if (i == 0 || tmp[i].id != tmp[i - 1].id) uniq[++g] = tmp[i].id;
        code[tmp[i].pos] = g;
    }
    *G = g + 1;
    free(tmp);
    return O1P_OK;
}

void rewards_codes_from_offsets(o1p_int G, const int64_t *offsets, int64_t *code) {
    for (o1p_int g = 0; g < G; g++)
        for (int64_t i = offsets[g]; i < offsets[g + 1]; i++) code[i] = g;
}

int rewards_group_stats(o1p_int S, const double *lengths, const double *correct,
                        const int64_t *code, o1p_int G, double *mean_length, double *accuracy,
                        int64_t *count) {
    memset(mean_length, 0, (size_t)G * sizeof(double));
    memset(accuracy, 0, (size_t)G * sizeof(double));
    memset(count, 0, (size_t)G * sizeof(int64_t));
    for (o1p_int i = 0; i < S; i++) {
        int64_t g = code[i];
        mean_length[g] += lengths[i];
        accuracy[g] += correct[i];
        count[g] += 1;
    }
    int overflow = 0;
    for (o1p_int g = 0; g < G; g++) {
        if (count[g] == 0) return O1P_EVALUE;
        overflow |= isinf(mean_length[g]);
        mean_length[g] /= (double)count[g];
        accuracy[g] /= (double)count[g];
    }
    if (overflow) {
        /* a group whose sum of lengths overflowed (lengths near DBL_MAX): sum
         * it again in units of 2^64 (the mean of finite values is finite) */
        double *scaled = (double *)calloc((size_t)G, sizeof(double));
        if (scaled == NULL) return O1P_ENOMEM;
        for (o1p_int i = 0; i < S; i++)
            if (isinf(mean_length[code[i]])) scaled[code[i]] += ldexp(lengths[i], -64);
        for (o1p_int g = 0; g < G; g++)
            if (isinf(mean_length[g])) mean_length[g] = ldexp(scaled[g] / (double)count[g], 64);
        free(scaled);
    }
    return O1P_OK;
}

void rewards_length_harmonizing(o1p_int S, const double *lengths, const double *correct,
                                const double *ref_mean_length, const double *ref_accuracy,
                                double lam, double *out) {
    for (o1p_int i = 0; i < S; i++) {
        double length_term = (ref_mean_length[i] - lengths[i]) / lengths[i];
        double acc_term = lam * (correct[i] - ref_accuracy[i]);
        out[i] = length_term + acc_term;
    }
}

/* Mean and population std of x[0..n) in units of 2^e, where 2^e is the
 * power of two just above max |x| (*e receives it): the values are scaled
 * into (-1, 1) first, so that neither their sum nor their squared deviations
 * overflow (1.7e308 twice) or underflow (1e-300, 2e-300, 3e-300). Scaling by
 * a power of two is exact for normal numbers, so weights in the usual range
 * are bit for bit those of the unscaled formula, and the z-score
 * (x - mean) / std is scale-free: zscore() applies it in the same units.
 * Neumaier-compensated sums so that a large dataset of similar weights keeps
 * its small spread. A set whose values are all equal gets std exactly 0 (its
 * rounded mean may differ from the values by an ulp, which would otherwise
 * give a spurious tiny std). */
static void mean_std(o1p_int n, const double *x, double *mean, double *std, int *e) {
    double lo = x[0], hi = x[0], amax = 0.0;
    for (o1p_int i = 0; i < n; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
        amax = fabs(x[i]) > amax ? fabs(x[i]) : amax;
    }
    *e = 0;
    if (amax > 0.0) (void)frexp(amax, e);
    double s = 0.0, c = 0.0;
    for (o1p_int i = 0; i < n; i++) {
        double v = ldexp(x[i], -*e);
        double t = s + v;
        c += fabs(s) >= fabs(v) ? (s - t) + v : (v - t) + s;
        s = t;
    }
    double m = (s + c) / (double)n;
    double q = 0.0, cq = 0.0;
    for (o1p_int i = 0; i < n; i++) {
        double v = ldexp(x[i], -*e);
        double d = (v - m) * (v - m);
        double t = q + d;
        cq += q >= d ? (q - t) + d : (d - t) + q;
        q = t;
    }
    *mean = m;
    *std = lo == hi ? 0.0 : sqrt((q + cq) / (double)n);
}

/* (x - mean) / std with mean and std from mean_std (units of 2^e); 0 for a
 * set without spread. */
static double zscore(double x, double mean, double std, int e) {
    return std > 0 ? (ldexp(x, -e) - mean) / std : 0.0;
}

int rewards_harmonize(o1p_int S, const double *w, int do_clip, double lo, double hi,
                      int normalize, const int64_t *code, o1p_int G, double *out) {
    for (o1p_int i = 0; i < S; i++) {
        double v = w[i];
        if (do_clip) {
            if (v <= lo) v = lo; /* the public code's rule: <= lower, > upper */
            if (v > hi) v = hi;
        }
        out[i] = v;
    }
    if (S == 0 || normalize == REWARDS_NORM_NONE) return O1P_OK;
    if (normalize == REWARDS_NORM_DATASET) {
        double m, sd;
        int e;
        mean_std(S, out, &m, &sd, &e);
        for (o1p_int i = 0; i < S; i++) out[i] = zscore(out[i], m, sd, e);
        return O1P_OK;
    }
    /* per group: gather each group's values contiguously, then normalise */
    int64_t *start = (int64_t *)calloc((size_t)G + 1, sizeof(int64_t));
    int64_t *order = (int64_t *)malloc((size_t)S * sizeof(int64_t));
    double *buf = (double *)malloc((size_t)S * sizeof(double));
    if (!start || !order || !buf) {
        free(start);
        free(order);
        free(buf);
        return O1P_ENOMEM;
    }
    for (o1p_int i = 0; i < S; i++) start[code[i] + 1]++;
    for (o1p_int g = 0; g < G; g++) start[g + 1] += start[g];
    {
        int64_t *fill = (int64_t *)malloc((size_t)(G > 0 ? G : 1) * sizeof(int64_t));
        if (!fill) {
            free(start);
            free(order);
            free(buf);
            return O1P_ENOMEM;
        }
        memcpy(fill, start, (size_t)G * sizeof(int64_t));
        for (o1p_int i = 0; i < S; i++) order[fill[code[i]]++] = i;
        free(fill);
    }
    for (o1p_int i = 0; i < S; i++) buf[i] = out[order[i]];
    for (o1p_int g = 0; g < G; g++) {
        o1p_int n = start[g + 1] - start[g];
        if (n == 0) continue;
        double m, sd;
        int e;
        mean_std(n, buf + start[g], &m, &sd, &e);
        for (int64_t j = start[g]; j < start[g + 1]; j++) out[order[j]] = zscore(buf[j], m, sd, e);
    }
    free(start);
    free(order);
    free(buf);
    return O1P_OK;
}
