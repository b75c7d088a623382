"""The shipped reference model (o1pruner.models.load_reference), the script
that reproduces it (o1pruner.models.train_reference, on tiny settings) and the
per-level report (o1pruner.models.reference_report)."""

import json
import os

import numpy as np
import pytest

import o1pruner
from o1pruner.models import TinyLM, load_reference, reference_info, reference_path
from o1pruner.tasks import ArithmeticTask, CharTokenizer

from helpers import import_dev

rr = import_dev("reference_report")
trm = import_dev("train_reference")

TINY_ARCH = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)


# ---- the shipped checkpoint ---------------------------------------------------------------

def test_shipped_checkpoint_files():
    d = reference_path("arithmetic")
    names = sorted(os.listdir(d))
    assert names == ["config.json", "model.safetensors", "training.json"]
    size = sum(os.path.getsize(os.path.join(d, n)) for n in names)
    assert size <= 10 * 2 ** 20
    info = reference_info("arithmetic")
    assert info["dtype"] == "float16"
    assert info["stopped_early"] is False
    assert info["steps"] == info["settings"]["steps"]
    # the measured behaviour is recorded per level, greedy and sampled
    levels = info["history"][-1]["report"]["levels"]
    assert [r["level"] for r in levels] == list(range(1, ArithmeticTask().n_levels + 1))
    for kind in ("greedy", "sampled"):
        rep = info["behaviour"][kind]
        assert rep["per_level"] == 200 and len(rep["levels"]) == ArithmeticTask().n_levels


def test_load_reference_matches_task_and_answers():
    m = load_reference("arithmetic")
    tok = CharTokenizer()
    assert m.config.vocab_size == tok.vocab_size
    assert m.config.bos_token_id == tok.bos_token_id and m.config.eos_token_id == tok.eos_token_id
    assert all(p.dtype == np.float32 for _, p in m.named_parameters())
    # independent copies
    m2 = load_reference("arithmetic")
    name, v = next(iter(m.named_parameters()))
    v[...] = 0
    assert np.any(dict(m2.named_parameters())[name] != 0)
    # it solves easy held-out problems greedily, in the task's format
    rep = rr.level_report(m2, per_level=8, seed=5)
    assert rep["levels"][0]["accuracy"] >= 0.75
    assert rep["all"]["well_formed"] >= 0.9


def test_shipped_settings_are_the_defaults():
    info = reference_info("arithmetic")
    s = trm.SFTSettings()
    assert info["settings"]["steps"] == s.steps and info["settings"]["lr"] == s.lr
    assert info["settings"]["batch_size"] == s.batch_size
    assert info["config"]["hidden_size"] == trm.reference_config().hidden_size
    assert info["task"]["check_probs"] == list(ArithmeticTask().check_probs)


# ---- train_reference on tiny settings ------------------------------------------------------

def _tiny_run(tmp_path, name, seed=0, steps=6):
    settings = trm.SFTSettings(steps=steps, batch_size=4, warmup=2)
    cfg = trm.reference_config(**TINY_ARCH)
    return trm.train_reference(str(tmp_path / name), seed=seed, settings=settings, config=cfg, eval_every=0,
                               eval_per_level=1, progress=False, report_per_level=1)


def test_train_reference_tiny_writes_checkpoint(tmp_path, capsys):
    model, info = _tiny_run(tmp_path, "a")
    d = tmp_path / "a"
    assert sorted(os.listdir(d)) == ["config.json", "model.safetensors", "training.json"]
    saved = json.loads((d / "training.json").read_text())
    assert saved["steps"] == 6 and saved["settings"]["batch_size"] == 4 and saved["seed"] == 0
    assert np.isfinite(saved["loss"]) and saved["tokens"] > 0
    assert len(saved["history"]) == 1 and len(saved["history"][0]["report"]["levels"]) == ArithmeticTask().n_levels
    assert saved["behaviour"]["greedy"]["temperature"] == 0.0 and saved["behaviour"]["sampled"]["temperature"] == 1.0
    assert saved["behaviour"]["greedy"]["all"]["n"] == ArithmeticTask().n_levels
    loaded = TinyLM.load(str(d), optimizer=False)
    for (n1, v1), (n2, v2) in zip(model.named_parameters(), loaded.named_parameters()):
        assert n1 == n2
        np.testing.assert_allclose(v2, v1.astype(np.float16).astype(np.float32), rtol=0, atol=0)
    assert "step 6" in capsys.readouterr().out  # the final evaluation is printed


def test_train_reference_seeded(tmp_path):
    prev = o1pruner.get_num_threads()
    o1pruner.set_num_threads(1)
    try:
        m1, _ = _tiny_run(tmp_path, "a", seed=3)
        m2, _ = _tiny_run(tmp_path, "b", seed=3)
        m3, _ = _tiny_run(tmp_path, "c", seed=4)
    finally:
        o1pruner.set_num_threads(prev)
    p1, p2, p3 = (np.concatenate([v.ravel() for _, v in m.named_parameters()]) for m in (m1, m2, m3))
    np.testing.assert_array_equal(p1, p2)
    assert not np.array_equal(p1, p3)


def test_sft_loss_decreases():
    tok = CharTokenizer()
    model = TinyLM(trm.reference_config(tok, **TINY_ARCH), seed=0)
    rec = trm.train_sft(model, ArithmeticTask(), trm.SFTSettings(steps=60, batch_size=8, lr=1e-2, warmup=5),
                        tokenizer=tok, progress=False, log=lambda m: None)
    assert rec["steps"] == 60
    first = np.log(tok.vocab_size)  # loss of a uniform model, about where training starts
    assert rec["loss"] < 0.8 * first


def test_encode_examples_bos_and_prompt_length():
    tok = CharTokenizer()
    (ids, n), = trm.encode_examples(tok, [("Q:1+2\n", "x")])
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
    assert n == 1 + len(tok.encode("Q:1+2\n"))
    assert ids[n:-1] == tok.encode("x")


def test_time_limit_stops_early():
    tok = CharTokenizer()
    model = TinyLM(trm.reference_config(tok, **TINY_ARCH), seed=0)
    msgs = []
    rec = trm.train_sft(model, ArithmeticTask(), trm.SFTSettings(steps=1000, batch_size=2), tokenizer=tok,
                        max_seconds=0.0, progress=False, log=msgs.append)
    assert rec["stopped_early"] and rec["steps"] == 1
    assert "not the full schedule" in msgs[0]


def test_train_reference_cli(tmp_path, capsys):
    out = tmp_path / "cli"
    rc = trm.main(["--out", str(out), "--steps", "3", "--batch-size", "2", "--hidden-size", "16",
                   "--intermediate-size", "32", "--layers", "1", "--eval-every", "0", "--eval-per-level", "1",
                   "--report-per-level", "0", "--no-progress"])
    assert rc == 0
    assert (out / "model.safetensors").is_file()
    assert "saved" in capsys.readouterr().out


# ---- the report ------------------------------------------------------------------------------

def test_level_report_and_format(tmp_path):
    tok = CharTokenizer()
    model = TinyLM(trm.reference_config(tok, **TINY_ARCH), seed=0)
    rep = rr.level_report(model, per_level=2, seed=1, max_new_tokens=5)
    n_lv = ArithmeticTask().n_levels
    assert len(rep["levels"]) == n_lv and rep["all"]["n"] == 2 * n_lv
    for r in rep["levels"]:
        assert r["n"] == 2 and 0 <= r["accuracy"] <= 1 and 0 <= r["mean_length"] <= 5
    assert rep["temperature"] == 0.0
    text = rr.format_report(rep)
    lines = text.splitlines()
    assert lines[0].startswith("| level | problems | accuracy | mean length")
    assert len(lines) == 2 + n_lv + 1 and lines[-1].startswith("| all | %d |" % (2 * n_lv))
    # sampled decoding: deterministic under its seed
    s1 = rr.level_report(model, per_level=2, seed=1, max_new_tokens=5, temperature=1.0, sample_seed=7)
    s2 = rr.level_report(model, per_level=2, seed=1, max_new_tokens=5, temperature=1.0, sample_seed=7)
    assert s1["levels"] == s2["levels"] and s1["temperature"] == 1.0


def test_report_cli_on_checkpoint(tmp_path, capsys):
    tok = CharTokenizer()
    model = TinyLM(trm.reference_config(tok, **TINY_ARCH), seed=0)
    model.save(str(tmp_path / "m"), optimizer=False)
    assert rr.main(["--checkpoint", str(tmp_path / "m"), "--per-level", "1", "--temperature", "1"]) == 0
    out = capsys.readouterr().out
    assert "Greedy decoding" in out and "Sampled at temperature 1" in out
    assert out.count("| all |") == 2


def test_checkpoint_is_package_data():
    """Every file of the shipped checkpoint is listed as package data (so a
    wheel ships it; checked by hand with `pip wheel .` + listing the wheel)."""
    tomllib = pytest.importorskip("tomllib")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(root, "pyproject.toml")
    if not os.path.isfile(path):
        pytest.skip("not running from a source tree")
    with open(path, "rb") as f:
        data = tomllib.load(f)["tool"]["setuptools"]["package-data"]["o1pruner.models"]
    for name in os.listdir(reference_path("arithmetic")):
        assert f"reference_checkpoint/{name}" in data
