# Typed stubs of the C extension o1pruner._core. The public, documented API is
# in the Python modules that wrap these (o1pruner.rewards, ...).
from typing import Any, Optional, Sequence, Tuple

import numpy as np
import numpy.typing as npt

_F64 = npt.NDArray[np.float64]
_F32 = npt.NDArray[np.float32]
_I64 = npt.NDArray[np.int64]

# runtime
def set_num_threads(n: int, /) -> None: ...
def get_num_threads() -> int: ...
def build_info() -> dict[str, Any]: ...
def sgemm(a: npt.ArrayLike, b: npt.ArrayLike, trans_a: bool = ..., trans_b: bool = ...) -> _F32: ...

# rewards
def reference_stats(
    lengths: npt.ArrayLike,
    correct: npt.ArrayLike,
    group: Optional[npt.ArrayLike] = ...,
    offsets: Optional[npt.ArrayLike] = ...,
) -> Tuple[_I64, _F64, _F64, _I64, _I64]: ...
def length_harmonizing_reward(
    lengths: npt.ArrayLike,
    correct: npt.ArrayLike,
    ref_mean_length: npt.ArrayLike,
    ref_accuracy: npt.ArrayLike,
    lam: float,
) -> _F64: ...
def harmonize_weights(
    rewards: npt.ArrayLike,
    clip: Optional[Sequence[float]] = ...,
    normalize: Optional[str] = ...,
    group: Optional[npt.ArrayLike] = ...,
) -> _F64: ...

# objectives (ppo)
def sequence_logprobs(token_logp: npt.ArrayLike, mask: npt.ArrayLike, reduce: str = ...) -> _F64: ...
def sequence_logprobs_backward(grad: npt.ArrayLike, mask: npt.ArrayLike, reduce: str = ...) -> _F32: ...
def ppo_clip_loss(
    logp: npt.ArrayLike,
    ref_logp: npt.ArrayLike,
    advantages: npt.ArrayLike,
    mask: npt.ArrayLike,
    eps_low: float = ...,
    eps_high: float = ...,
    ratio: str = ...,
    aggregate: Optional[str] = ...,
    dual_clip: Optional[float] = ...,
    logratio_clamp: Optional[float] = ...,
) -> Tuple[float, _F32, Tuple[float, float, float, float, float, float, int]]: ...
def dpo_loss(
    chosen_logp: npt.ArrayLike,
    rejected_logp: npt.ArrayLike,
    ref_chosen_logp: npt.ArrayLike,
    ref_rejected_logp: npt.ArrayLike,
    chosen_mask: npt.ArrayLike,
    rejected_mask: npt.ArrayLike,
    beta: float = ...,
    weights: Optional[npt.ArrayLike] = ...,
    length_normalize: bool = ...,
) -> Tuple[float, _F32, _F32, Tuple[float, float, float, float, int]]: ...
# grading
def grader_extract(texts: Sequence[str], modes: Sequence[int]) -> list[Optional[str]]: ...
def grader_compare(
    predictions: Sequence[Optional[str]],
    golds: Sequence[str],
    modes: Optional[Sequence[int]] = ...,
    rtol: float = ...,
    strict_fractions: bool = ...,
    ordered_lists: bool = ...,
) -> Tuple[npt.NDArray[np.int8], npt.NDArray[np.bool_]]: ...
def grader_normalize(answer: str, /) -> str: ...
# token log-probs
def token_logprobs(
    logits: npt.ArrayLike,
    targets: npt.ArrayLike,
    temperature: float,
    ignore_index: int,
) -> Tuple[_F32, _F32, _F32]: ...
def token_logprobs_backward(
    logits: npt.ArrayLike,
    targets: npt.ArrayLike,
    lse: npt.ArrayLike,
    grad_logp: npt.ArrayLike,
    grad_entropy: Optional[npt.ArrayLike],
    temperature: float,
    ignore_index: int,
    out: Optional[_F32] = ...,
    accumulate: bool = ...,
) -> _F32: ...

# fused LM head + token log-probs
def fused_linear_logprobs(
    hidden: npt.ArrayLike,
    weight: npt.ArrayLike,
    targets: npt.ArrayLike,
    temperature: float,
    ignore_index: int,
    bias: Optional[npt.ArrayLike] = ...,
) -> Tuple[_F32, _F32, _F32]: ...
def fused_linear_logprobs_backward(
    hidden: npt.ArrayLike,
    weight: npt.ArrayLike,
    targets: npt.ArrayLike,
    lse: npt.ArrayLike,
    entropy: npt.ArrayLike,
    grad_logp: npt.ArrayLike,
    grad_entropy: Optional[npt.ArrayLike],
    temperature: float,
    ignore_index: int,
    bias: Optional[npt.ArrayLike] = ...,
    grad_hidden: Optional[_F32] = ...,
    grad_weight: Optional[_F32] = ...,
    grad_bias: Optional[_F32] = ...,
) -> Tuple[_F32, _F32, Optional[_F32]]: ...
# model (o1pruner.models.TinyLM); config = (vocab_size, hidden_size,
# intermediate_size, num_hidden_layers, num_attention_heads,
# max_position_embeddings, rms_norm_eps, rope_theta)
_ModelConfig = Tuple[int, int, int, int, int, int, float, float]
def model_layout(config: _ModelConfig) -> list[Tuple[str, int, Tuple[int, ...]]]: ...
def model_num_params(config: _ModelConfig) -> int: ...
def model_arena_size(config: _ModelConfig, n_tokens: int, threads: int = ...) -> int: ...
def model_forward(
    config: _ModelConfig,
    params: _F32,
    arena: _F32,
    input_ids: npt.ArrayLike,
    attention_mask: Optional[npt.ArrayLike] = ...,
    targets: Optional[npt.ArrayLike] = ...,
    ignore_index: int = ...,
    temperature: float = ...,
    return_entropy: bool = ...,
    return_hidden: bool = ...,
) -> Tuple[Optional[_F32], Optional[_F32], Optional[_F32]]: ...
def model_backward(
    config: _ModelConfig,
    params: _F32,
    grads: _F32,
    arena: _F32,
    input_ids: npt.ArrayLike,
    attention_mask: Optional[npt.ArrayLike],
    targets: npt.ArrayLike,
    grad_logp: npt.ArrayLike,
    ignore_index: int = ...,
    temperature: float = ...,
) -> None: ...
def model_grad_norm(grads: _F32) -> float: ...
def model_adamw_step(
    params: _F32,
    grads: _F32,
    exp_avg: _F32,
    exp_avg_sq: _F32,
    step: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    max_grad_norm: Optional[float] = ...,
) -> float: ...
def model_generate(
    config: _ModelConfig,
    params: _F32,
    prompt_ids: npt.ArrayLike,
    prompt_offsets: npt.ArrayLike,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    stop_token_ids: Optional[npt.ArrayLike],
    seed: int,
    seq_index0: int = ...,
    fill: int = ...,
    workspace: Optional[_F32] = ...,
) -> Tuple[_I64, _I64, npt.NDArray[np.bool_]]: ...
def model_generate_work_size(
    config: _ModelConfig, n_prompts: int, n_prompt_tokens: int, max_prompt: int, max_new_tokens: int
) -> int: ...
