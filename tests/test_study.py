"""o1pruner study on tiny settings with the shipped reference model: files,
keys and report sections; a rerun skips the finished arms; the statistics
helpers (Student-t interval, paired difference) against hand-computed
values; bad input is a named error."""

import dataclasses
import json
import math
import os

import numpy as np
import pytest

from o1pruner.apps import study as study_mod
from o1pruner.apps.cli import main
from o1pruner.apps.demo import DemoSettings
from o1pruner.apps.study import run_study, study_arms, study_settings, summarise_study
from o1pruner.pipeline import paired_t_interval, t_interval, t_quantile


def tiny_settings(**kw):
    q = DemoSettings.quick()
    tiny = dict(n_train=10, k=2, n_eval=10, max_new_tokens=160, o1pruner=dataclasses.replace(q.o1pruner, batch_size=8),
                sft=dataclasses.replace(q.sft, batch_size=8), dpo=dataclasses.replace(q.dpo, batch_size=8))
    tiny.update(kw)
    return study_settings(quick=True, **tiny)


# ---- statistics -----------------------------------------------------------------------------

def test_t_quantile_against_tables():
    # Student-t table values (two-sided 95% and 99%)
    for df, v in ((1, 12.706204736), (2, 4.302652730), (4, 2.776445105), (9, 2.262157163), (30, 2.042272456)):
        assert t_quantile(0.975, df) == pytest.approx(v, abs=1e-8)
    assert t_quantile(0.995, 3) == pytest.approx(5.840909310, abs=1e-8)
    assert t_quantile(0.025, 4) == pytest.approx(-2.776445105, abs=1e-8)
    assert t_quantile(0.975, 10 ** 6) == pytest.approx(1.959966, abs=1e-5)  # tends to the normal's


def test_t_interval_hand_computed():
    # values 1, 2, 3: mean 2, s = 1, n = 3: half width t(0.975, 2) / sqrt(3) = 4.302652730 / 1.7320508 = 2.484138
    lo, hi = t_interval([1.0, 2.0, 3.0])
    assert (lo, hi) == pytest.approx((2 - 2.484137712, 2 + 2.484137712), abs=1e-8)
    # prediction interval for one more value: half width t s sqrt(1 + 1/n) = 4.302652730 * 1.1547005 = 4.968275
    lo, hi = t_interval([1.0, 2.0, 3.0], prediction=True)
    assert (lo, hi) == pytest.approx((2 - 4.968275424, 2 + 4.968275424), abs=1e-8)
    # five seeds: 0.1, 0.2, 0.3, 0.2, 0.2: mean 0.2, s = sqrt(0.02 / 4) = 0.0707107; t(0.975, 4) = 2.776445
    lo, hi = t_interval([0.1, 0.2, 0.3, 0.2, 0.2])
    half = 2.776445105 * math.sqrt(0.005) / math.sqrt(5)
    assert (lo, hi) == pytest.approx((0.2 - half, 0.2 + half), abs=1e-10)
    assert all(math.isnan(x) for x in t_interval([1.0]))
    assert t_interval([4.0, 4.0, 4.0]) == (4.0, 4.0)


def test_paired_t_interval_hand_computed():
    a = [0.5, 0.4, 0.6]
    b = [0.2, 0.3, 0.1]
    # differences 0.3, 0.1, 0.5: mean 0.3, s = 0.2, half width t(0.975, 2) 0.2 / sqrt(3) = 0.496828
    mean, (lo, hi) = paired_t_interval(a, b)
    assert mean == pytest.approx(0.3)
    assert (lo, hi) == pytest.approx((0.3 - 0.4968275424, 0.3 + 0.4968275424), abs=1e-9)
    # the pairing matters: the same values unpaired would not give this interval
    assert paired_t_interval(a, b[::-1])[1] != pytest.approx((lo, hi))


def test_statistics_bad_input():
    with pytest.raises(ValueError, match="values: must be finite"):
        t_interval([1.0, float("nan")])
    with pytest.raises(ValueError, match="confidence"):
        t_interval([1.0, 2.0], confidence=1.5)
    with pytest.raises(ValueError, match="a, b: must pair up"):
        paired_t_interval([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="a, b: empty"):
        paired_t_interval([], [])
    with pytest.raises(ValueError, match="df"):
        t_quantile(0.975, 0)
    with pytest.raises(ValueError, match="p: must be in"):
        t_quantile(1.0, 3)


# ---- bad input --------------------------------------------------------------------------------

def test_run_study_bad_input_is_named(tmp_path):
    out = tmp_path / "s"
    with pytest.raises(ValueError, match="arms: unknown arm 'o1pruner_lam7'"):
        run_study(out, [0], quick=True, arms=["o1pruner_lam7"], plots=False)
    with pytest.raises(ValueError, match="seeds: need at least one seed"):
        run_study(out, [], quick=True, plots=False)
    with pytest.raises(ValueError, match="seeds: each seed must be an int >= 0"):
        run_study(out, [-1], quick=True, plots=False)
    with pytest.raises(ValueError, match="seeds: a seed is repeated"):
        run_study(out, [1, 1], quick=True, plots=False)
    with pytest.raises(ValueError, match="split: must be one of"):
        run_study(out, [0], split="train", quick=True, plots=False)
    with pytest.raises(ValueError, match="lams: each lambda"):
        run_study(out, [0], lams=[-1.0], quick=True, plots=False)
    assert not out.exists()  # nothing was started


def test_cli_study_bad_input(tmp_path, capsys):
    base = ["study", "--quick", "--out", str(tmp_path / "s"), "--no-plots", "--quiet"]
    for extra, msg in ((["--arms", "nope"], "arms: unknown arm 'nope'"),
                       (["--set", "n_trian=3"], "the demo has no setting 'n_trian'")):
        assert main(base + extra) == 2
        assert msg in capsys.readouterr().err
    for extra, msg in ((["--seeds", ""], "--seeds: expected at least one seed"),
                       (["--seeds", "0,0"], "a seed is repeated"),
                       (["--seeds", "-1"], "seeds must be >= 0"),
                       (["--split", "train"], "--split: invalid choice")):
        with pytest.raises(SystemExit) as e:  # argparse's own errors: exit code 2
            main(base + extra)
        assert e.value.code == 2
        assert msg in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_study_arms_always_hold_the_demo_lambda():
    names = [a.name for a in study_arms([0.0, 2.0])]
    assert names == ["o1pruner_lam0", "o1pruner_lam2", "o1pruner_lam5", "o1pruner_m2", "o1pruner_auto",
                     "sft_shortest", "dpo"]
    assert [a.name for a in study_arms()][:5] == ["o1pruner_lam0", "o1pruner_lam0.5", "o1pruner_lam1",
                                                   "o1pruner_lam2", "o1pruner_lam5"]
    full = study_settings()
    assert full.n_train == DemoSettings.full().n_train and full.eval_split == "test"
    assert study_settings(split="validation").eval_split == "validation"


# ---- the study end to end ----------------------------------------------------------------------

def test_study_end_to_end_and_resume(tmp_path, monkeypatch):
    out = tmp_path / "study"
    lines = []
    arms = ["o1pruner_lam0", "o1pruner_lam5", "o1pruner_auto", "sft_shortest", "dpo"]
    st = run_study(out, [0, 1, 2], quick=True, arms=arms, settings=tiny_settings(), log=lines.append)
    # files
    for name in ("study.json", "report.md", "study_tradeoff.png", "study_levels.png", "study_lambda.png"):
        assert (out / name).exists(), name
    for s in (0, 1, 2):
        for a in ["reference"] + arms:
            assert (out / f"seed{s}" / a / "result.json").exists()
        assert not (out / f"seed{s}" / "o1pruner_lam5" / "train" / "checkpoints").exists()  # results only
    saved = json.loads((out / "study.json").read_text())
    assert saved["seeds"] == [0, 1, 2] and [a["name"] for a in saved["arms"]] == arms
    r = saved["results"]["1"]["o1pruner_lam5"]
    for key in ("accuracy", "mean_length", "delta_length", "delta_accuracy", "aes", "steps", "seconds", "per_level"):
        assert key in r, key
    assert {"accuracy", "mean_length", "mean_passes", "delta_length"} <= set(r["per_level"][0])
    # the baselines train as many steps as the demo's arm (a whole number of epochs each)
    for s in ("0", "1", "2"):
        res = saved["results"][s]
        for a in ("sft_shortest", "dpo"):
            per_epoch = -(-res[a]["train_units"] // 8)
            assert abs(res[a]["steps"] - res["o1pruner_lam5"]["steps"]) <= per_epoch / 2 + 1e-9
    # the summary is the mean of the per-seed values, the interval the t-interval
    dl = [saved["results"][s]["o1pruner_lam5"]["delta_length"] for s in ("0", "1", "2")]
    summ = saved["summary"]["o1pruner_lam5"]["delta_length"]
    assert summ["mean"] == pytest.approx(np.mean(dl))
    assert summ["ci"] == pytest.approx(list(t_interval(dl)))
    assert {p["baseline"] for p in saved["paired"] if p["arm"] == "o1pruner_lam5"} == {"sft_shortest", "dpo"}
    assert [r["lam"] for r in saved["lambda_curve"]] == [0.0, 5.0]
    assert len(saved["checklist"]) >= 12 and all(it["met"] in (True, False, None) for it in saved["checklist"])
    # the m = 2 arm was not run: the report says so rather than guessing
    report = (out / "report.md").read_text()
    for section in ("## Per arm", "## Paired differences within seeds", "## Lambda curve", "## Per-level relative length cut",
                    "## Criteria", "## Time"):
        assert section in report, section
    assert "| SFT-shortest |" in report and "| DPO |" in report
    assert sum(1 for ln in lines if "seed" in ln and "ETA" in ln) == 3 * (len(arms) + 1)
    assert st["checklist"] == saved["checklist"]

    # a rerun trains nothing: every (seed, arm) has its result
    calls = []
    real = study_mod.train_stage
    monkeypatch.setattr(study_mod, "train_stage", lambda *a, **k: calls.append(1) or real(*a, **k))
    os.remove(out / "seed1" / "dpo" / "result.json")  # as if stopped before DPO of seed 1 finished
    lines.clear()
    st2 = run_study(out, [0, 1, 2], quick=True, arms=arms, settings=tiny_settings(), log=lines.append, plots=False)
    assert len(calls) == 1  # only the missing arm
    assert any("seed 0: every arm has its result" in ln for ln in lines)
    assert st2["results"]["0"] == saved["results"]["0"]
    # the reference of seed 1 was read back from its stored outputs, not evaluated again, with the same numbers
    assert st2["results"]["1"]["reference"] == saved["results"]["1"]["reference"]
    # other settings in the same folder are refused, naming the folder
    with pytest.raises(ValueError, match="holds results of other settings"):
        run_study(out, [1], quick=True, arms=["dpo"], settings=tiny_settings(n_eval=12), plots=False)


def test_reference_read_back_matches(tmp_path):
    """The stored reference outputs give back the same EvalResult (the
    comparisons of a resumed seed use it)."""
    from o1pruner.apps.demo import load_reference_model, evaluate_stage, task_problems
    from o1pruner.data import write_jsonl
    from o1pruner.pipeline import evaluate_samples
    from o1pruner.tasks import CharTokenizer, get_task

    s = tiny_settings()
    task, tok = get_task("addition"), CharTokenizer()
    probs = task_problems(task, 10, "test", 0)
    res = evaluate_stage(load_reference_model(None), "reference", probs, s, tok, progress=False)
    write_jsonl(tmp_path / "e.jsonl", res.samples)
    back = evaluate_samples(tmp_path / "e.jsonl", name="reference", seed=0)
    assert back.accuracy == res.accuracy and back.mean_length == res.mean_length
    assert back.buckets == res.buckets and back.length_ci == res.length_ci


def test_checklist_is_computed_from_the_numbers():
    """A synthetic study where O1-Pruner clearly wins meets the criteria; the
    same with its length change flipped does not."""
    arms = study_arms([0.0, 2.0, 5.0])

    def level_rows(dl_easy, dl_hard, passes, dacc=0.0):
        return [{"bucket": lv, "accuracy": 0.9, "mean_length": 80.0, "mean_passes": passes,
                 "delta_length": dl_easy + (dl_hard - dl_easy) * (lv - 1) / 4, "delta_accuracy": dacc}
                for lv in range(1, 6)]

    def make(dl5):
        results = {}
        for s in range(5):
            r = {"reference": {"accuracy": 0.9, "mean_length": 100.0, "seconds": 1.0,
                               "per_level": [{"bucket": lv, "accuracy": 0.9, "mean_length": 100.0, "mean_passes": 2.0}
                                             for lv in range(1, 6)]}}
            for a in arms:
                e = (s - 2) * 0.002  # spread, deterministic
                if a.name == "o1pruner_lam0":
                    dl, da, aes = -0.6 + e, -0.1 + e, -0.5
                elif a.method == "o1pruner":
                    dl, da, aes = dl5 + e, 0.01 + e, 0.5 + e
                else:
                    dl, da, aes = -0.1 + e, -0.02 + e, 0.0 + e
                r[a.name] = {"accuracy": 0.9 + da, "mean_length": 100 * (1 + dl), "delta_length": dl,
                             "delta_accuracy": da, "aes": aes, "steps": 10, "seconds": 1.0,
                             "per_level": level_rows(dl - 0.2, dl + 0.2, 1.5, da)}
            results[s] = r
        return results

    agg = summarise_study(make(-0.4), arms, "o1pruner_lam5")
    assert [it["met"] for it in agg["checklist"]] == [True] * len(agg["checklist"]), agg["checklist"]
    bad = summarise_study(make(+0.1), arms, "o1pruner_lam5")
    first = bad["checklist"][0]
    assert first["met"] is False and "+10.0%" in first["numbers"]
