/* model.h: a small decoder-only transformer of the Hugging Face Qwen2 family
 * (tied embedding/LM head, RMSNorm, rotary embedding, causal multi-head
 * attention with q/k/v biases, SwiGLU MLP, final norm): training forward and
 * backward over a padded batch, AdamW, and batched sampling with a KV cache.
 *
 * Extra dimension letters used here (besides the legend of o1p.h):
 *   F  MLP intermediate width (intermediate_size)
 *   D  head width d / H
 *   P  number of float32 parameters (model_num_params)
 *
 * Parameters live in one flat float32 buffer params[P] with this layout (all
 * matrices row-major, [out, in] as torch.nn.Linear.weight):
 *   embed[V,d]                        model.embed_tokens.weight (= LM head)
 *   per layer l = 0..L-1:
 *     ln1[d]                          input_layernorm.weight
 *     wqkv[3d,d]  = q, k, v weights   self_attn.{q,k,v}_proj.weight
 *     bqkv[3d]    = q, k, v biases    self_attn.{q,k,v}_proj.bias
 *     wo[d,d]                         self_attn.o_proj.weight (no bias)
 *     ln2[d]                          post_attention_layernorm.weight
 *     wgu[2F,d]   = gate, up weights  mlp.{gate,up}_proj.weight
 *     wdown[d,F]                      mlp.down_proj.weight
 *   norm[d]                           model.norm.weight
 * q/k/v (and gate/up) are stacked so each pair/triple is one sgemm.
 * num_key_value_heads == num_attention_heads (no grouped-query attention).
 *
 * Batches are right-padded [B,T] with lengths[B]: row b holds lengths[b] real
 * tokens at positions 0..lengths[b]-1 (position ids are the column index, as
 * Hugging Face uses without position_ids). Inside, the real tokens are packed
 * into N = sum(lengths) rows, so padding costs no compute.
 */
#ifndef O1P_MODEL_H
#define O1P_MODEL_H

#include "o1p.h"

typedef struct {
    o1p_int vocab_size;        /* V */
    o1p_int hidden_size;       /* d */
    o1p_int intermediate_size; /* F */
    o1p_int num_layers;        /* L */
    o1p_int num_heads;         /* H; D = d / H must be even (rotary pairs) */
    o1p_int max_positions;     /* max_position_embeddings: lengths <= this */
    float rms_norm_eps;
    float rope_theta;
} model_config;

/* Offsets (in floats) of one layer's tensors inside params. */
typedef struct {
    o1p_int ln1, wqkv, bqkv, wo, ln2, wgu, wdown;
} model_layer_offsets;

/* 0 when the config is usable (all sizes >= 1, d divisible by H, D even,
 * eps > 0, theta > 0), else O1P_EVALUE. */
int model_config_check(const model_config *cfg);
/* P, the number of parameters. */
o1p_int model_num_params(const model_config *cfg);
/* Offset of the embedding (always 0), of layer l's tensors, of the final norm. */
model_layer_offsets model_layer_offsets_of(const model_config *cfg, o1p_int l);
o1p_int model_norm_offset(const model_config *cfg);

/* Floats of the training arena for N packed tokens: activations kept for the
 * backward, the backward's scratch and, for threads > 1, threads - 1 private
 * gradient buffers of P floats (else the backward allocates them). */
o1p_int model_arena_floats(const model_config *cfg, o1p_int N, int threads);

/* Training forward. ids[B,T] in [0,V), lengths[B] in [0,min(T,max_positions)],
 * targets[B,T] in [0,V) or ignore_index (NULL: no LM head, only hidden states).
 * Position (b,t) with t >= lengths[b] is padding: its targets are ignored.
 * Outputs (overwritten, padding and ignored positions set to 0):
 *   logp[B,T]     log p(targets[b,t] | tokens 0..t) at the given temperature
 *   entropy[B,T]  entropy of that distribution (may be NULL)
 *   hidden[B,T,d] final-norm hidden states, input of the LM head (may be NULL)
 * arena[>= model_arena_floats(cfg, N, 1)] keeps what model_backward needs.
 * O1P_EVALUE if a row of logits is non-finite, O1P_ENOMEM on allocation failure. */
int model_forward(const model_config *cfg, const float *params, o1p_int B, o1p_int T,
                  const int64_t *ids, const int64_t *lengths, const int64_t *targets,
                  int64_t ignore_index, float temperature, float *arena, float *logp,
                  float *entropy, float *hidden);

/* Backward of sum_{b,t} grad_logp[b,t] logp[b,t] through the model, after
 * model_forward with the same params, ids, lengths, targets, temperature and
 * arena (of arena_floats floats). ACCUMULATES into grads[P] (same layout as
 * params). */
int model_backward(const model_config *cfg, const float *params, o1p_int B, o1p_int T,
                   const int64_t *ids, const int64_t *lengths, const int64_t *targets,
                   int64_t ignore_index, float temperature, float *arena, o1p_int arena_floats,
                   const float *grad_logp, float *grads);

/* Global L2 norm of grads[P] (double accumulation, same result for any
 * thread count). */
double model_grad_norm(o1p_int P, const float *grads);

/* One AdamW step as torch.optim.AdamW (decoupled weight decay, bias
 * correction), after clipping the gradient to global norm max_grad_norm as
 * torch.nn.utils.clip_grad_norm_ (coefficient min(1, max/(norm + 1e-6));
 * max_grad_norm <= 0 or inf: no clipping). step is the 1-based step count.
 * Updates params, exp_avg, exp_avg_sq in place; grads are not modified.
 * *grad_norm receives the norm before clipping. */
int model_adamw_step(o1p_int P, float *params, const float *grads, float *exp_avg,
                     float *exp_avg_sq, int64_t step, double lr, double beta1, double beta2,
                     double eps, double weight_decay, double max_grad_norm, double *grad_norm);

/* Batched sampling with a KV cache. Prompt b is prompt_ids[offsets[b] ..
 * offsets[b+1]) (>= 1 token); it may grow to offsets[b+1]-offsets[b] +
 * max_new <= max_positions. Each step draws from softmax(logits /
 * temperature) restricted to the top-p nucleus (temperature 0: argmax, ties
 * to the lowest id); a sequence stops after emitting any of stop_ids[n_stop].
 * Randomness: a counter-based generator keyed by (seed, seq_index0 + b, step),
 * so results do not depend on the thread count or on which other prompts
 * share the batch (up to float rounding of batched matmuls).
 * work[work_floats]: float workspace (activations, KV cache) of at least
 * model_generate_work_floats(...) with the current thread count; NULL or a
 * smaller one: allocated inside. Reusing one across calls saves the kernel
 * zeroing fresh pages.
 * Outputs: tokens[B,max_new] (fill after the end), lengths[B] (generated
 * tokens incl. the stop token), stopped[B] (1 if a stop token ended it). */
int model_generate(const model_config *cfg, const float *params, o1p_int B,
                   const int64_t *prompt_ids, const int64_t *offsets, o1p_int max_new,
                   float temperature, float top_p, const int64_t *stop_ids, o1p_int n_stop,
                   uint64_t seed, int64_t seq_index0, int64_t fill, float *work,
                   o1p_int work_floats, int64_t *tokens, int64_t *lengths, uint8_t *stopped);

/* Floats of model_generate's workspace for B prompts of n_prompt_tokens in
 * total (the longest max_prompt) and max_new new tokens, at the current
 * thread count. */
o1p_int model_generate_work_floats(const model_config *cfg, o1p_int B, o1p_int n_prompt_tokens,
                                   o1p_int max_prompt, o1p_int max_new);

#endif /* O1P_MODEL_H */
