"""Data at the boundary of the package: files (JSONL that reports its bad
lines, atomic writes, crash-safe appends), the formats of other tools, prompt
templates, problems as records, tokenisation, validators, and the weighted
training set as columns.

``o1pruner.io`` (the documented name of the file layer) is this package: it
holds every name of :mod:`.io` and :mod:`.formats` and
:data:`PUBLIC_SYSTEM_PROMPT`.
"""

from .._atomic import fsync_dir
from . import formats, io
from .formats import *  # noqa: F401,F403
from .io import *  # noqa: F401,F403
from .prompts import MARCO_SAMPLING_TEMPLATE, PUBLIC_SYSTEM_PROMPT, PUBLIC_TRAIN_TEMPLATE, PromptTemplate, as_template

__all__ = [*io.__all__, *formats.__all__, "PUBLIC_SYSTEM_PROMPT", "PromptTemplate", "fsync_dir"]
