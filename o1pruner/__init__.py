"""o1pruner: O1-Pruner (Length-Harmonizing Fine-Tuning) with a C core.

Make long-thinking reasoning models think shorter without losing accuracy:
pre-sample the model, score each sample by how much shorter than the model's
own average it is (with an accuracy penalty), and fine-tune off-policy with a
PPO-clip objective. See the README and ``o1pruner.show_config()``.

Public API (NumPy arrays in and out):

- rewards: :func:`reference_stats`, :func:`length_harmonizing_reward`,
  :func:`harmonize_weights`
- objectives: :func:`sequence_logprobs`, :func:`sequence_logprobs_backward`,
  :func:`ppo_clip_loss`, :func:`dpo_loss` (the DPO baseline)
- grading: :func:`grade_responses`, :func:`grade_many`, :func:`grade`,
  :func:`compare_answers` (:class:`Verdict`), :func:`extract_answer`,
  :func:`extract_answers`, :func:`normalize_answer`
- token log-probs: :func:`token_logprobs`, :func:`token_logprobs_backward`
- metrics: :func:`aes`
- pipeline: :func:`presample`, :func:`build_dataset`, :func:`sft_shortest_dataset`,
  :func:`dpo_pairs`,
  :func:`load_samples`, :func:`evaluate`, :func:`evaluate_samples`,
  :func:`compare`, :class:`PromptTemplate`; file formats in :mod:`o1pruner.io`;
  :func:`build_dataset_streaming` for files of any size; :class:`Trainer`
  (:class:`TrainConfig`) fine-tunes the built-in model (PPO-clip with a fixed
  or dual-ascent lambda, the SFT-shortest or the DPO baseline), :class:`TinyLMGenerator`
  samples it; ``o1pruner.demo.run_demo`` runs the whole method on the built-in task
- with real models (optional extras, imported on demand): :mod:`o1pruner.torch`,
  :mod:`o1pruner.hf`, :mod:`o1pruner.integrations` (TRL, verl, Ray)
- fused LM head: :func:`fused_linear_logprobs`,
  :func:`fused_linear_logprobs_backward`
- models: :class:`o1pruner.models.TinyLM` (a small Qwen2-style transformer)
- runtime: :func:`set_num_threads`, :func:`get_num_threads`,
  :func:`show_config`, :func:`config`

Layout (README "Architecture"): :mod:`o1pruner.kernels` (the C-backed numeric
functions; their NumPy twins in ``kernels.slow``, torch twins in
``kernels.torch``), :mod:`o1pruner.data` (files, formats, prompts, records,
tokenisation, validators, the weighted dataset), :mod:`o1pruner.pipeline`
(pre-sample, build, stream, evaluate, compare), :mod:`o1pruner.train` (the
built-in model's trainer), :mod:`o1pruner.models`, :mod:`o1pruner.integrations`
(hf, trl, verl, ray), :mod:`o1pruner.apps` (CLI, demo, plots). The flat
layout's module names (``o1pruner.hf``, ``o1pruner.torch``, ``o1pruner.io``,
``o1pruner.training``, ...) still import (:mod:`o1pruner._compat`).
"""

from ._compat import install as _install_moved_paths

_install_moved_paths()  # o1pruner.hf, o1pruner.torch, o1pruner.io, ... (the flat layout's names)

from ._config import config, get_num_threads, set_num_threads, show_config  # noqa: E402
from .kernels.fused import FusedLogprobs, FusedStats, fused_linear_logprobs, fused_linear_logprobs_backward  # noqa: E402
from .kernels.grading import (  # noqa: E402
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
from .kernels.logprobs import TokenLogprobs, token_logprobs, token_logprobs_backward  # noqa: E402
from .kernels.objectives import (  # noqa: E402
    DPOResult,
    DPOStats,
    PPOClipResult,
    PPOStats,
    dpo_loss,
    ppo_clip_loss,
    sequence_logprobs,
    sequence_logprobs_backward,
)
from .kernels.rewards import ReferenceStats, harmonize_weights, length_harmonizing_reward, reference_stats  # noqa: E402
from . import models  # noqa: E402  (o1pruner.models.TinyLM)

# ---- pipeline (presample, build, evaluate; file formats in o1pruner.io) ----
from . import data as io  # noqa: E402  (o1pruner.io: the file layer, the documented name)
from .data.dataset import WeightedDataset  # noqa: E402
from .data.prompts import PromptTemplate  # noqa: E402
from .data.records import as_problems  # noqa: E402
from .data.tokenize import count_tokens  # noqa: E402
from .models.generator import TinyLMGenerator  # noqa: E402
from .pipeline import (  # noqa: E402
    EvalResult,
    aes,
    build_dataset,
    build_dataset_streaming,
    compare,
    compare_buckets,
    difficulty_report,
    evaluate,
    evaluate_samples,
    load_samples,
    presample,
    sft_shortest_dataset,
    dpo_pairs,
    PairDataset,
)
from .train import TrainConfig, Trainer  # noqa: E402

__version__ = "0.1.0"


def __getattr__(name: str):
    """``o1pruner.grading``, ``o1pruner.rewards``, ... (the flat layout's
    submodules, which ``import o1pruner`` used to bind) on first access."""
    from ._compat import MOVED

    if f"o1pruner.{name}" in MOVED:
        import importlib

        return importlib.import_module(f"o1pruner.{name}")
    raise AttributeError(f"module 'o1pruner' has no attribute {name!r}")

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
    "dpo_pairs",
    "PairDataset",
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
    "dpo_loss",
    "DPOResult",
    "DPOStats",
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
