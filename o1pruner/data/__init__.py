"""Data at the boundary of the package: files (JSONL that reports its bad
lines, atomic writes, crash-safe appends), the formats of other tools, prompt
templates, problems as records, tokenisation, validators, and the weighted
training set as columns.

``o1pruner.io`` (the documented name of the file layer) is this package: it
holds every name of :mod:`.io` and :mod:`.formats` and
:data:`PUBLIC_SYSTEM_PROMPT`.
"""

from .._atomic import fsync_dir
from .formats import (
    PUBLIC_FIELDS,
    check_k,
    group_by_problem,
    llamafactory_dataset_info,
    read_llamafactory,
    read_o1pruner_samples,
    read_vllm_jsonl,
    samples_to_vllm,
    vllm_to_samples,
    write_llamafactory,
    write_o1pruner_samples,
    write_vllm_jsonl,
)
from .io import (
    FieldError,
    JSONLAppender,
    JSONLError,
    PathLike,
    Records,
    atomic_write,
    check_required,
    iter_jsonl,
    read_json,
    read_jsonl,
    write_json,
    write_jsonl,
)
from .prompts import MARCO_SAMPLING_TEMPLATE, PUBLIC_SYSTEM_PROMPT, PUBLIC_TRAIN_TEMPLATE, PromptTemplate, as_template

__all__ = [
    "JSONLError",
    "FieldError",
    "Records",
    "iter_jsonl",
    "read_jsonl",
    "write_jsonl",
    "write_json",
    "read_json",
    "atomic_write",
    "JSONLAppender",
    "read_o1pruner_samples",
    "write_o1pruner_samples",
    "read_vllm_jsonl",
    "write_vllm_jsonl",
    "vllm_to_samples",
    "samples_to_vllm",
    "read_llamafactory",
    "write_llamafactory",
    "llamafactory_dataset_info",
    "PUBLIC_SYSTEM_PROMPT",
    "PathLike",
    "PromptTemplate",
]
