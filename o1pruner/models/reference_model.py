"""The reference model shipped with the package: a TinyLM trained by
supervised fine-tuning on the long-thought solutions of the built-in
arithmetic task (:mod:`o1pruner.models.train_reference` reproduces it)."""

from __future__ import annotations

import json
import os
from typing import Any, Dict

from .tinylm import TinyLM

__all__ = ["reference_path", "reference_info", "load_reference"]

_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference_checkpoint")


def reference_path() -> str:
    """Folder of the shipped checkpoint (``config.json``, ``model.safetensors``,
    ``training.json``).

    Raises
    ------
    FileNotFoundError
        If the package was installed without its data files.
    """
    if not os.path.isfile(os.path.join(_DIR, "model.safetensors")):
        raise FileNotFoundError(
            f"reference model: {_DIR} has no model.safetensors (package installed without its data?); "
            "train one with `python -m o1pruner.models.train_reference --out DIR` and load it with TinyLM.load(DIR)")
    return _DIR


def reference_info() -> Dict[str, Any]:
    """How the shipped checkpoint was made: settings, task, training time and
    its measured per-level behaviour (the ``training.json`` next to it)."""
    with open(os.path.join(reference_path(), "training.json")) as f:
        return json.load(f)


def load_reference() -> TinyLM:
    """The built-in reference model, loaded from package data.

    A :class:`TinyLM` (float32 in memory; stored as float16) trained on the
    long-thought solutions of :class:`o1pruner.tasks.ArithmeticTask` with its
    default levels and check law, and the :class:`o1pruner.tasks.CharTokenizer`
    vocabulary. Each call returns a new, independent model.

    Examples
    --------
    >>> from o1pruner.models import load_reference
    >>> from o1pruner.tasks import CharTokenizer
    >>> model, tok = load_reference(), CharTokenizer()
    >>> prompt = [tok.bos_token_id] + tok.encode("Q:3+4\\n")  # as the pipeline encodes prompts
    >>> out = model.generate([prompt], tok, temperature=0, max_new_tokens=120)
    >>> print(out.texts[0])
    3+4=7?
    check 3+4=7 ok
    check 3+4=7 ok
    check 3+4=7 ok
    so the answer is \\boxed{7}
    """
    return TinyLM.load(reference_path(), optimizer=False)
