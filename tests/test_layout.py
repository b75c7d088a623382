"""The package's layout stays what README "Architecture" says: the flat
layout's module names still import (the same module objects as their new
homes), and no module imports another's private helper at import time
through a cycle."""

import importlib
import sys

import pytest

import o1pruner
from o1pruner._compat import MOVED


@pytest.mark.parametrize("old,new", sorted(MOVED.items()))
def test_old_module_paths_are_the_new_modules(old, new):
    if old in ("o1pruner.torch", "o1pruner.hf"):
        pytest.importorskip("torch")
        if old == "o1pruner.hf":
            pytest.importorskip("transformers")
    assert importlib.import_module(old) is importlib.import_module(new)
    assert getattr(o1pruner, old.split(".")[1]) is sys.modules[new]


def test_documented_names():
    assert o1pruner.io.PUBLIC_SYSTEM_PROMPT.startswith("You are a helpful assistant")
    assert o1pruner.grading.compare is o1pruner.compare_answers
    from o1pruner.train import PPOConfig, TrainConfig
    assert issubclass(TrainConfig, PPOConfig)
    with pytest.raises(AttributeError):
        o1pruner.no_such_module
