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
