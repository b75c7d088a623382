"""The O1-Pruner data pipeline (method.md steps 1-2 and the evaluation):
pre-sample a model K times per problem, grade and measure each sample, build
the weighted training set exactly as the public O1-Pruner code does (in
memory, or streaming for files of any size), and evaluate a model against its
reference. Works with the built-in model and with anything that maps prompts
to texts (vLLM, Hugging Face, an API), counting lengths with the user's
tokenizer.

Modules: :mod:`.generate` (generator and grader adapters: the one
generate -> grade -> measure path), :mod:`.presample`, :mod:`.build`,
:mod:`.streaming`, :mod:`.evaluate`, :mod:`.report` (comparisons),
:mod:`.metrics`. ``o1pruner.evaluation`` (the former module) is this package.
"""

from ..data.dataset import PairDataset, WeightedDataset
from ..data.records import as_problems
from ..data.tokenize import count_tokens
from .build import build_dataset, dpo_pairs, sft_shortest_dataset
from .evaluate import (
    DEFAULT_ACCURACY_BINS,
    EvalResult,
    bootstrap_interval,
    evaluate,
    evaluate_samples,
    paired_t_interval,
    reference_accuracy,
    t_interval,
    t_quantile,
    wilson_interval,
)
from .metrics import aes
from .presample import PRESAMPLE_FORMAT, load_samples, presample
from .report import Table, compare, compare_buckets, difficulty_report
from .streaming import StreamResult, build_dataset_streaming, iter_samples

__all__ = [
    "as_problems",
    "count_tokens",
    "presample",
    "load_samples",
    "build_dataset",
    "sft_shortest_dataset",
    "dpo_pairs",
    "WeightedDataset",
    "PairDataset",
    "build_dataset_streaming",
    "StreamResult",
    "iter_samples",
    "EvalResult",
    "evaluate",
    "evaluate_samples",
    "compare",
    "compare_buckets",
    "difficulty_report",
    "reference_accuracy",
    "wilson_interval",
    "bootstrap_interval",
    "t_quantile",
    "t_interval",
    "paired_t_interval",
    "Table",
    "DEFAULT_ACCURACY_BINS",
    "PRESAMPLE_FORMAT",
    "aes",
]
