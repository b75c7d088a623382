"""The reference models shipped with the package, one per built-in task:
TinyLMs trained by supervised fine-tuning on each task's long-thought
solutions.

- ``"addition"`` (the default; ``reference_addition/``): 2.9 M parameters,
  trained on :class:`o1pruner.tasks.AdditionTask`; ``python -m
  dev.train_addition`` reproduces it (the command is in its
  ``training.json``), ``python -m o1pruner.tasks.addition_report`` measures it.
- ``"arithmetic"`` (``reference_checkpoint/``): 0.87 M parameters, trained on
  :class:`o1pruner.tasks.ArithmeticTask`; ``python -m dev.train_reference``
  reproduces it.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict

from .tinylm import TinyLM

__all__ = ["reference_path", "reference_info", "load_reference", "REFERENCE_TASKS"]

_HERE = os.path.dirname(os.path.abspath(__file__))
_DIRS = {"addition": os.path.join(_HERE, "reference_addition"),
         "arithmetic": os.path.join(_HERE, "reference_checkpoint")}
_HOW = {"addition": "python -m dev.train_addition (see its training.json for the exact command)",
        "arithmetic": "python -m dev.train_reference --out DIR"}

#: Tasks with a shipped reference model, the default first.
REFERENCE_TASKS = tuple(_DIRS)


def reference_path(task: str = "addition") -> str:
    """Folder of the shipped checkpoint of `task` (``config.json``,
    ``model.safetensors``, ``training.json``).

    Raises
    ------
    ValueError
        On a task without a shipped reference.
    FileNotFoundError
        If the package was installed without its data files.
    """
    if task not in _DIRS:
        raise ValueError(f"task: must be one of {list(_DIRS)}, got {task!r}")
    d = _DIRS[task]
    if not os.path.isfile(os.path.join(d, "model.safetensors")):
        raise FileNotFoundError(
            f"reference model: {d} has no model.safetensors (package installed without its data?); "
            f"train one with `{_HOW[task]}` and load it with TinyLM.load(DIR)")
    return d


def reference_info(task: str = "addition") -> Dict[str, Any]:
    """How the shipped checkpoint of `task` was made: settings, task,
    training time and its measured per-level behaviour (the
    ``training.json`` next to it)."""
    with open(os.path.join(reference_path(task), "training.json")) as f:
        return json.load(f)


def load_reference(task: str = "addition") -> TinyLM:
    """The built-in reference model of `task`, loaded from package data.

    A :class:`TinyLM` (float32 in memory; stored as float16) trained on the
    long-thought solutions of the task (``"addition"``:
    :class:`o1pruner.tasks.AdditionTask`, the default; ``"arithmetic"``:
    :class:`o1pruner.tasks.ArithmeticTask`) with its default levels and check
    law, and the :class:`o1pruner.tasks.CharTokenizer` vocabulary. Each call
    returns a new, independent model.

    Examples
    --------
    >>> from o1pruner.models import load_reference
    >>> from o1pruner.tasks import CharTokenizer
    >>> model, tok = load_reference(), CharTokenizer()
    >>> prompt = [tok.bos_token_id] + tok.encode("Q:37+5\\n")  # as the pipeline encodes prompts
    >>> out = model.generate([prompt], tok, temperature=0, max_new_tokens=120)
    >>> print(out.texts[0])  # doctest: +SKIP
    """
    return TinyLM.load(reference_path(task), optimizer=False)
