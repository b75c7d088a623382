"""o1pruner: O1-Pruner (Length-Harmonizing Fine-Tuning) with a C core.

Make long-thinking reasoning models think shorter without losing accuracy:
pre-sample the model, score each sample by how much shorter than the model's
own average it is (with an accuracy penalty), and fine-tune off-policy with a
PPO-clip objective. See the README and ``o1pruner.show_config()``.

Public API (NumPy arrays in and out):

- rewards: :func:`reference_stats`, :func:`length_harmonizing_reward`,
  :func:`harmonize_weights`
- objectives: :func:`sequence_logprobs`, :func:`sequence_logprobs_backward`,
  :func:`ppo_clip_loss`
- grading: :func:`grade_responses`, :func:`grade_many`, :func:`grade`,
  :func:`compare_answers` (``o1pruner.grading.compare``; :class:`Verdict`), :func:`extract_answer`,
  :func:`extract_answers`, :func:`normalize_answer`
- token log-probs: :func:`token_logprobs`, :func:`token_logprobs_backward`
- metrics: :func:`aes`
- pipeline: :func:`presample`, :func:`build_dataset`, :func:`sft_shortest_dataset`,
  :func:`load_samples`, :func:`evaluate`, :func:`evaluate_samples`,
  :func:`compare`, :class:`PromptTemplate`; file formats in :mod:`o1pruner.io`;
  :func:`build_dataset_streaming` for files of any size; :class:`Trainer`
  (:class:`TrainConfig`) fine-tunes the built-in model (PPO-clip with a fixed
  or dual-ascent lambda, or the SFT-shortest baseline), :class:`TinyLMGenerator`
  samples it; ``o1pruner.demo.run_demo`` runs the whole method on the built-in task
- with real models (optional extras, imported on demand): :mod:`o1pruner.torch`,
  :mod:`o1pruner.hf`, :mod:`o1pruner.integrations` (TRL, verl, Ray)
- fused LM head: :func:`fused_linear_logprobs`,
  :func:`fused_linear_logprobs_backward`
- models: :class:`o1pruner.models.TinyLM` (a small Qwen2-style transformer)
- runtime: :func:`set_num_threads`, :func:`get_num_threads`,
  :func:`show_config`, :func:`config`
"""

from ._config import config, get_num_threads, set_num_threads, show_config
from .fused import FusedLogprobs, FusedStats, fused_linear_logprobs, fused_linear_logprobs_backward
from .grading import (
    GradingResult,
    Verdict,
    extract_answer,
    extract_answers,
    grade,
    grade_many,
    grade_responses,
    normalize_answer,
)
from .grading import compare as compare_answers
from .logprobs import TokenLogprobs, token_logprobs, token_logprobs_backward
from .metrics import aes
from .objectives import (
    PPOClipResult,
    PPOStats,
    ppo_clip_loss,
    sequence_logprobs,
    sequence_logprobs_backward,
)
from .rewards import ReferenceStats, harmonize_weights, length_harmonizing_reward, reference_stats
from . import models  # noqa: E402  (o1pruner.models.TinyLM)

# ---- pipeline (presample, build, evaluate; file formats in o1pruner.io) ----
from . import io
from .evaluation import EvalResult, compare, compare_buckets, difficulty_report, evaluate, evaluate_samples
from .pipeline import WeightedDataset, as_problems, build_dataset, count_tokens, load_samples, presample, sft_shortest_dataset
from .prompts import PromptTemplate
from .streaming import build_dataset_streaming
from .training import TinyLMGenerator, TrainConfig, Trainer

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "config",
    "show_config",
    "set_num_threads",
    "get_num_threads",
    "ReferenceStats",
    "reference_stats",
    "length_harmonizing_reward",
    "harmonize_weights",
    "TokenLogprobs",
    "token_logprobs",
    "token_logprobs_backward",
    "aes",
    # pipeline
    "io",
    "PromptTemplate",
    "as_problems",
    "count_tokens",
    "presample",
    "load_samples",
    "build_dataset",
    "sft_shortest_dataset",
    "build_dataset_streaming",
    "WeightedDataset",
    "evaluate",
    "evaluate_samples",
    "compare",
    "compare_buckets",
    "difficulty_report",
    "EvalResult",
    "Trainer",
    "TrainConfig",
    "TinyLMGenerator",
    "sequence_logprobs",
    "sequence_logprobs_backward",
    "ppo_clip_loss",
    "PPOClipResult",
    "PPOStats",
    "Verdict",
    "GradingResult",
    "extract_answer",
    "extract_answers",
    "normalize_answer",
    "compare_answers",
    "grade",
    "grade_many",
    "grade_responses",
    "FusedStats",
    "FusedLogprobs",
    "fused_linear_logprobs",
    "fused_linear_logprobs_backward",
    "models",
]
