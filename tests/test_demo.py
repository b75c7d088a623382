"""o1pruner.demo on tiny settings with the shipped reference model: the whole
loop runs, results.json has the numbers the tables print, the settings of
`o1pruner demo` / `--quick` are the documented ones."""

import dataclasses
import json
import os

import pytest

from o1pruner.apps.demo import DemoSettings, format_levels, format_table, run_demo
from o1pruner.train import TrainConfig


def tiny_settings(**kw):
    base = DemoSettings.quick(n_train=10, k=2, n_eval=10, max_new_tokens=160,
                              o1pruner=dataclasses.replace(DemoSettings.quick().o1pruner, epochs=1, batch_size=8),
                              sft=dataclasses.replace(DemoSettings.quick().sft, epochs=1, batch_size=8))
    return dataclasses.replace(base, **kw)


def test_demo_tiny_end_to_end(tmp_path):
    msgs = []
    res = run_demo(tmp_path / "d", tiny_settings(), plots=False, progress=False, log=msgs.append)
    for key in ("reference", "sft_shortest", "dpo", "o1pruner"):
        m = res[key]
        assert 0 <= m["accuracy"] <= 1 and m["mean_length"] > 0 and m["n"] == 10
        assert len(m["per_level"]) >= 1
    assert res["training"]["o1pruner"]["samples"] == 20  # all K samples of 10 problems are kept
    assert res["settings"]["samples_per_problem"] is None
    saved = json.loads((tmp_path / "d" / "results.json").read_text())
    assert saved["o1pruner"]["mean_length"] == pytest.approx(res["o1pruner"]["mean_length"])
    table = format_table(res)
    assert table.count("\n") == 5 and "O1-Pruner" in table and "SFT-shortest" in table and "| DPO |" in table
    assert "| level |" in format_levels(res) and "DPO acc %" in format_levels(res)
    # the baselines get about as many optimizer steps as O1-Pruner (a whole number of epochs each)
    tr = res["training"]
    assert res["settings"]["match_steps"] is True
    for name in ("sft_shortest", "dpo"):
        per_epoch = -(-tr[name]["samples"] // 8)
        assert abs(tr[name]["total_steps"] - tr["o1pruner"]["total_steps"]) <= per_epoch / 2 + 1e-9, tr
    assert res["task"] == "addition" and res["eval_split"] == "test"
    assert any("non-default" in m for m in msgs)  # the demo says which options differ from the library's


def test_demo_settings_documented_options():
    full, quick = DemoSettings.full(), DemoSettings.quick()
    lib = TrainConfig()
    for s in (full, quick):
        # the demo's documented departures from the public code's defaults
        assert s.samples_per_problem is None
        assert s.o1pruner.objective == "ppo" and s.o1pruner.ratio == lib.ratio
        assert s.sft.objective == "sft" and s.dpo.objective == "dpo"
        assert s.lam == 5.0 and s.temperature == 0.6 and s.top_p == 0.9 and s.k == 8  # chosen on validation
        assert s.task == "addition" and s.eval_split is None and s.match_steps
    assert quick.n_train < full.n_train and quick.n_eval <= full.n_eval
    assert "samples_per_problem" in full.note and "lam=5" in full.note


def test_non_default_options_lists_departures():
    from o1pruner.apps.demo import non_default_options

    plain = non_default_options(DemoSettings.full())
    assert any(x.startswith("samples_per_problem=None") for x in plain)
    assert any(x.startswith("eps_low=0.05") for x in plain)
    assert not any(x.startswith("dual_") for x in plain)  # only used by the dual ascent
    s = DemoSettings.full()
    s.o1pruner = dataclasses.replace(s.o1pruner, lam="auto")
    auto = non_default_options(s)
    assert any(x.startswith("lam='auto'") for x in auto)
    assert any(x.startswith("dual_estimator='problem'") for x in auto)
    assert any(x.startswith("lam=5.0") for x in plain)
    lib = DemoSettings.full(samples_per_problem=2, lam=2.0, o1pruner=TrainConfig(lr=5e-4, epochs=7))
    assert non_default_options(lib) == []
    assert non_default_options(DemoSettings.full(samples_per_problem=2, lam=2.0, normalize="group",
                                                 o1pruner=TrainConfig())) == ["normalize='group' (default: 'dataset')"]


def test_seed_drives_the_training_data_order_too():
    # --seed once left both trainers' data order at seed 0
    from o1pruner.apps.commands import _apply_settings

    for make in (DemoSettings.full, DemoSettings.quick):
        s = make(seed=3)
        assert s.seed == 3 and s.o1pruner.seed == 3 and s.sft.seed == 3 and s.dpo.seed == 3
        assert make().o1pruner.seed == 0
    s = _apply_settings(DemoSettings.quick(seed=3), ["o1pruner.seed=7"])
    assert s.o1pruner.seed == 7 and s.sft.seed == 3
