"""The module paths of the flat layout (before the packages), kept working.

``import o1pruner.hf``, ``o1pruner.torch``, ``o1pruner.io``, ... load the
module at its new home and register it under the old name too, so old code,
pickles and the README's examples keep working (it is the same module object:
attributes set through either name are seen through both). New code should use
the new homes (the table below); the old names are deprecated but not
scheduled for removal. No file exists at an old path, so nothing can drift.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from typing import Dict

#: old dotted name -> new dotted name
MOVED: Dict[str, str] = {
    "o1pruner.rewards": "o1pruner.kernels.rewards",
    "o1pruner.logprobs": "o1pruner.kernels.logprobs",
    "o1pruner.fused": "o1pruner.kernels.fused",
    "o1pruner.objectives": "o1pruner.kernels.objectives",
    "o1pruner.grading": "o1pruner.kernels.grading",
    "o1pruner.reference": "o1pruner.kernels.slow",
    "o1pruner.torch": "o1pruner.kernels.torch",
    "o1pruner.io": "o1pruner.data",
    "o1pruner.prompts": "o1pruner.data.prompts",
    "o1pruner.evaluation": "o1pruner.pipeline",
    "o1pruner.streaming": "o1pruner.pipeline.streaming",
    "o1pruner.metrics": "o1pruner.pipeline.metrics",
    "o1pruner.training": "o1pruner.train",
    "o1pruner.hf": "o1pruner.integrations.hf",
    "o1pruner.cli": "o1pruner.apps.cli",
    "o1pruner.demo": "o1pruner.apps.demo",
    "o1pruner.plots": "o1pruner.apps.plots",
}


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        return importlib.import_module(self.target)

    def exec_module(self, module) -> None:  # already executed at its new home
        pass


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _Alias(new))


def install() -> None:
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
