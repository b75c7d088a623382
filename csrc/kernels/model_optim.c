/* model_optim.c: AdamW over the flat parameter buffer with global gradient
 * norm clipping, the arithmetic of torch.optim.AdamW and
 * torch.nn.utils.clip_grad_norm_. */
#include <math.h>
#include <stdlib.h>

#include "model.h"

/* The norm is summed in fixed chunks (double partial sums added in chunk
 * order), so it is the same for any thread count. */
#define O1P_NORM_CHUNK 4096

O1P_TARGET_CLONES
static double chunk_sumsq(const float *g, o1p_int n) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    o1p_int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += (double)g[i + j] * (double)g[i + j];
    double tail = 0;
    for (; i < n; i++) tail += (double)g[i] * (double)g[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

double model_grad_norm(o1p_int P, const float *grads) {
    o1p_int nchunks = (P + O1P_NORM_CHUNK - 1) / O1P_NORM_CHUNK;
    double *part = (double *)malloc((size_t)(nchunks > 0 ? nchunks : 1) * sizeof(double));
    double total = 0.0;
    if (part == NULL) { /* serial fallback, same chunk order */
        for (o1p_int c = 0; c < nchunks; c++) {
            o1p_int i0 = c * O1P_NORM_CHUNK;
            total += chunk_sumsq(grads + i0, O1P_MIN(P, i0 + O1P_NORM_CHUNK) - i0);
        }
        return sqrt(total);
    }
    int nt = o1p_threads_for(P, (o1p_int)1 << 19);
    (void)nt;
    O1P_OMP(parallel for num_threads(nt) schedule(static))
    for (o1p_int c = 0; c < nchunks; c++) {
        o1p_int i0 = c * O1P_NORM_CHUNK;
        part[c] = chunk_sumsq(grads + i0, O1P_MIN(P, i0 + O1P_NORM_CHUNK) - i0);
    }
    for (o1p_int c = 0; c < nchunks; c++) total += part[c];
    free(part);
    return sqrt(total);
}

O1P_TARGET_CLONES
static void adamw_chunk(o1p_int n, float *p, const float *g, float *m, float *v, float clip,
                        float decay, float b1, float b2, float step_size, float bc2_sqrt,
                        float eps) {
    for (o1p_int i = 0; i < n; i++) {
        float gi = g[i] * clip;
        float pi = p[i] * decay;                      /* decoupled weight decay */
        float mi = m[i] + (1.0f - b1) * (gi - m[i]);  /* torch: exp_avg.lerp_(grad, 1 - beta1) */
        float vi = v[i] * b2 + (1.0f - b2) * gi * gi; /* exp_avg_sq.mul_(b2).addcmul_(g, g, 1 - b2) */
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = pi - step_size * (mi / denom);
        m[i] = mi;
        v[i] = vi;
    }
}

int model_adamw_step(o1p_int P, float *params, const float *grads, float *exp_avg,
                     float *exp_avg_sq, int64_t step, double lr, double beta1, double beta2,
                     double eps, double weight_decay, double max_grad_norm, double *grad_norm) {
    if (step < 1) return O1P_EVALUE;
    double norm = model_grad_norm(P, grads);
    if (grad_norm) *grad_norm = norm;
    if (!isfinite(norm)) return O1P_EVALUE; /* nothing updated */
    double clip = 1.0;
    if (max_grad_norm > 0.0 && isfinite(max_grad_norm)) {
        clip = max_grad_norm / (norm + 1e-6);
        if (clip > 1.0) clip = 1.0;
    }
    double bc1 = 1.0 - pow(beta1, (double)step);
    double bc2 = 1.0 - pow(beta2, (double)step);
    float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    float decay = (float)(1.0 - lr * weight_decay);
    o1p_int nchunks = (P + O1P_NORM_CHUNK - 1) / O1P_NORM_CHUNK;
    int nt = o1p_threads_for(P, (o1p_int)1 << 18);
    (void)nt;
    O1P_OMP(parallel for num_threads(nt) schedule(static))
    for (o1p_int c = 0; c < nchunks; c++) {
        o1p_int i0 = c * O1P_NORM_CHUNK, n = O1P_MIN(P, i0 + O1P_NORM_CHUNK) - i0;
        adamw_chunk(n, params + i0, grads + i0, exp_avg + i0, exp_avg_sq + i0, (float)clip, decay,
                    (float)beta1, (float)beta2, step_size, bc2_sqrt, (float)eps);
    }
    return O1P_OK;
}
