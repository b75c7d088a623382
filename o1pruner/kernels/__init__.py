"""The numeric kernels as NumPy functions over the C core: rewards and
weights, token log-probs, the fused LM head, the PPO-clip and DPO
objectives, the grader. Their twins: :mod:`.slow` (NumPy, float64; the tests' yardstick) and
:mod:`.torch` (PyTorch; needs the torch extra, imported on demand), with the
same names and signatures.
"""

from .fused import FusedLogprobs, FusedStats, fused_linear_logprobs, fused_linear_logprobs_backward
from .grading import (
    GradingResult,
    Verdict,
    compare_answers,
    extract_answer,
    extract_answers,
    grade,
    grade_many,
    grade_responses,
    normalize_answer,
)
from .logprobs import TokenLogprobs, token_logprobs, token_logprobs_backward
from .objectives import (
    DPOResult,
    DPOStats,
    PPOClipResult,
    PPOStats,
    dpo_loss,
    ppo_clip_loss,
    sequence_logprobs,
    sequence_logprobs_backward,
)
from .rewards import ReferenceStats, harmonize_weights, length_harmonizing_reward, reference_stats

__all__ = [
    "FusedLogprobs", "FusedStats", "fused_linear_logprobs", "fused_linear_logprobs_backward",
    "GradingResult", "Verdict", "compare_answers", "extract_answer", "extract_answers", "grade", "grade_many",
    "grade_responses", "normalize_answer",
    "TokenLogprobs", "token_logprobs", "token_logprobs_backward",
    "PPOClipResult", "PPOStats", "ppo_clip_loss", "sequence_logprobs", "sequence_logprobs_backward",
    "DPOResult", "DPOStats", "dpo_loss",
    "ReferenceStats", "harmonize_weights", "length_harmonizing_reward", "reference_stats",
]
