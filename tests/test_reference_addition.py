"""The shipped reference model of the addition task (the demo's default):
its files, its recorded behaviour, and the properties the task needs,
measured live on a few problems (graded accuracy; checks that help only on
hard levels)."""

import os

import numpy as np
import pytest

from o1pruner.models import TinyLM, load_reference, reference_info, reference_path
from o1pruner.tasks import AdditionTask, CharTokenizer
from o1pruner.tasks.addition_report import decode_report, forced_generate


@pytest.fixture(scope="module")
def model():
    return load_reference()


def test_files_size_and_info():
    d = reference_path()
    assert d == reference_path("addition") and d.endswith("reference_addition")
    names = sorted(os.listdir(d))
    assert names == ["config.json", "model.safetensors", "training.json"]
    assert os.path.getsize(os.path.join(d, "model.safetensors")) <= 12 * 2 ** 20
    info = reference_info()
    assert info["task"]["name"] == "addition"
    assert info["task"]["levels"] == [list(lv.digits) for lv in AdditionTask().levels]
    assert "dev.train_addition" in info["command"] and f"--stop-at {info['step']}" in info["command"]
    for split in ("validation", "test"):
        b = info["behaviour"][split]
        for kind in ("greedy", "sampled"):
            assert [r["level"] for r in b[kind]["levels"]] == [1, 2, 3, 4, 5]
        assert sorted(int(k) for k in b["forced_greedy"]["checks"]) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="task: must be one of"):
        reference_path("nope")


def test_stored_as_float16_loaded_as_float32(model):
    from o1pruner.models._safetensors import read_safetensors_header

    header, _meta = read_safetensors_header(os.path.join(reference_path(), "model.safetensors"))
    assert {dtype for dtype, _shape in header.values()} == {"F16"}
    assert all(v.dtype == np.float32 for _, v in model.named_parameters())
    assert load_reference() is not load_reference()  # independent copies


def test_recorded_validation_table_is_graded():
    """The table the README shows (recorded by dev.ship_addition_reference):
    greedy accuracy falls across levels, easiest >= 0.90, hardest <= 0.75."""
    rows = reference_info()["behaviour"]["validation"]["greedy"]["levels"]
    acc = [r["accuracy"] for r in rows]
    assert acc[0] >= 0.90 and acc[-1] <= 0.75 and acc[0] - acc[-1] >= 0.15


def test_greedy_table_reproduces(model):
    """The recorded greedy test-split table is what the model does now
    (small tolerance: the reports ran on another thread count)."""
    info = reference_info()["behaviour"]["test"]["greedy"]
    rep = decode_report(model, split="test", per_level=info["per_level"], seed=123)
    for mine, rec in zip(rep["levels"], info["levels"]):
        assert mine["accuracy"] == pytest.approx(rec["accuracy"], abs=0.03)
        assert mine["mean_length"] == pytest.approx(rec["mean_length"], abs=2.0)


def test_checks_help_on_the_hardest_level_not_on_the_easiest(model):
    """Forced greedy decoding with 0 and 1 checks on 60 test problems of the
    easiest and of the hardest level: the first check raises the hardest
    level's accuracy a lot and changes the easiest level's little."""
    task, tok = AdditionTask(), CharTokenizer()
    gain = {}
    for level in (1, 5):
        probs = task.problems(60, split="test", seed=5, levels=[level])
        acc = []
        for k in (0, 1):
            texts = forced_generate(model, probs, k, tokenizer=tok)
            acc.append(float(np.mean(task.grade(texts, probs))))
        gain[level] = acc[1] - acc[0]
    assert gain[5] >= 0.15, gain
    assert abs(gain[1]) <= 0.07, gain
