"""The study behind the demo's one-seed headline (``o1pruner study``): for
each seed, pre-sample the reference once, then train and evaluate every arm
(O1-Pruner at several lambdas, with m = 2, with ``lam="auto"``; SFT-shortest
and DPO at matched steps) from those samples; aggregate across seeds with
Student-t intervals and paired differences; check the issue's criteria."""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from .. import data as _io
from .._atomic import PathLike, atomic_write
from .demo import (DEMO_LAM, DemoSettings, _check_settings, _load_reference, compared_entry, comparison_rows,
                   evaluate_stage, matched_config, presample_stage, reference_entry, task_problems, train_stage)

__all__ = ["StudyArm", "study_arms", "study_settings", "run_study", "summarise_study", "format_report",
           "STUDY_LAMS", "QUICK_LAMS", "STUDY_SEEDS", "QUICK_SEEDS", "STUDY_SPLITS"]

#: The lambda ablation (the issue's {0, 0.5, 1, 2, 5}; 5 is the demo's).
STUDY_LAMS = (0.0, 0.5, 1.0, 2.0, 5.0)
#: ``--quick``: the two ends of the curve.
QUICK_LAMS = (0.0, 5.0)
STUDY_SEEDS = (0, 1, 2, 3, 4)
QUICK_SEEDS = (0, 1)
#: Evaluation splits: test (to report) or validation (to choose settings on).
STUDY_SPLITS = ("test", "validation")
#: ``--quick``'s demo settings: tiny, for a test and CI (the numbers are noise).
QUICK_OVERRIDES = {"n_train": 30, "k": 4, "n_eval": 50}

#: One accuracy point (accuracy is a fraction).
POINT = 0.01


@dataclass(frozen=True)
class StudyArm:
    """One trained model of each seed.

    Attributes
    ----------
    name : str
        Folder and key (``o1pruner_lam2``, ``o1pruner_m2``, ``o1pruner_auto``,
        ``sft_shortest``, ``dpo``).
    label : str
        For tables and plots.
    method : {"o1pruner", "sft_shortest", "dpo"}
    lam : float or None
        Lambda of the weighted dataset (O1-Pruner; with ``auto`` the dual
        ascent's start); None: the demo's.
    samples_per_problem : int, None or "demo"
        m of the weighted dataset; "demo": the demo's (all K).
    auto : bool
        ``lam="auto"`` (the demo's dual settings).
    """

    name: str
    label: str
    method: str
    lam: Optional[float] = None
    samples_per_problem: Any = "demo"
    auto: bool = False


def _lam_name(lam: float) -> str:
    return f"o1pruner_lam{lam:g}"


def study_arms(lams: Sequence[float] = STUDY_LAMS, demo_lam: float = DEMO_LAM) -> List[StudyArm]:
    """The arms of a study: O1-Pruner at each lambda (the demo's lambda is
    always one of them: the baselines' step count is matched to it), with
    m = 2 and with ``lam="auto"`` (both at the demo's lambda), then
    SFT-shortest and DPO."""
    lams = sorted(set(float(x) for x in lams) | {float(demo_lam)})
    arms = [StudyArm(_lam_name(x), f"O1-Pruner lambda={x:g}", "o1pruner", lam=x) for x in lams]
    arms += [StudyArm("o1pruner_m2", f"O1-Pruner m=2 (lambda={demo_lam:g})", "o1pruner", lam=demo_lam,
                      samples_per_problem=2),
             StudyArm("o1pruner_auto", "O1-Pruner lambda=auto", "o1pruner", lam=demo_lam, auto=True),
             StudyArm("sft_shortest", "SFT-shortest", "sft_shortest"),
             StudyArm("dpo", "DPO", "dpo")]
    return arms


def study_settings(quick: bool = False, split: str = "test", **overrides) -> DemoSettings:
    """The demo settings every seed of a study starts from:
    :meth:`DemoSettings.full` (``quick``: the tiny ``QUICK_OVERRIDES`` on
    top), evaluated on `split`; `overrides` are DemoSettings fields."""
    base = dict(QUICK_OVERRIDES) if quick else {}
    base.update(overrides)
    return DemoSettings.full(**base, eval_split=split)


# ---- validation -----------------------------------------------------------------------------

def _check_seeds(seeds) -> List[int]:
    try:
        seeds = list(seeds)
    except TypeError:
        raise TypeError(f"seeds: must be a sequence of ints, got {type(seeds).__name__}") from None
    if len(seeds) < 1:
        raise ValueError("seeds: need at least one seed (the study's criteria ask for >= 5)")
    for x in seeds:
        if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < 0:
            raise ValueError(f"seeds: each seed must be an int >= 0, got {x!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds: a seed is repeated in {seeds}")
    return [int(x) for x in seeds]


def _check_lams(lams) -> List[float]:
    out = []
    for x in lams:
        if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)) or not math.isfinite(x) or x < 0:
            raise ValueError(f"lams: each lambda must be a finite number >= 0, got {x!r}")
        out.append(float(x))
    if not out:
        raise ValueError("lams: need at least one lambda")
    return out


def _select_arms(all_arms: List[StudyArm], names) -> List[StudyArm]:
    if names is None:
        return all_arms
    known = {a.name: a for a in all_arms}
    names = list(names)
    if not names:
        raise ValueError("arms: need at least one arm; arms: " + ", ".join(known))
    for n in names:
        if n not in known:
            raise ValueError(f"arms: unknown arm {n!r}; arms of this study: " + ", ".join(known))
    return [a for a in all_arms if a.name in set(names)]


# ---- one seed ---------------------------------------------------------------------------------

def _arm_data(arm: StudyArm, samples, s: DemoSettings, arm_dir: Optional[str]):
    """The arm's training data (written to ``arm_dir/train.jsonl`` unless
    `arm_dir` is None) and its TrainConfig before step matching."""
    from ..pipeline import build_dataset, dpo_pairs, sft_shortest_dataset

    path = None if arm_dir is None else os.path.join(arm_dir, "train.jsonl")
    if arm.method == "sft_shortest":
        ds = sft_shortest_dataset(samples, n=s.sft_n)
        if path is not None:
            ds.to_jsonl(path)
        return ds, s.sft
    if arm.method == "dpo":
        return dpo_pairs(samples, n=s.dpo_n, out=path), s.dpo
    m = s.samples_per_problem if arm.samples_per_problem == "demo" else arm.samples_per_problem
    lam = s.lam if arm.lam is None else arm.lam
    ds = build_dataset(samples, lam=lam, samples_per_problem=m, seed=s.seed, normalize=s.normalize,
                       out=path)
    cfg = dataclasses.replace(s.o1pruner, lam="auto") if arm.auto else s.o1pruner
    return ds, cfg


def _result_path(out: str, seed: int, name: str) -> str:
    return os.path.join(out, f"seed{seed}", name, "result.json")


def _fmt_time(sec: float) -> str:
    sec = max(0, int(round(sec)))
    h, r = divmod(sec, 3600)
    return (f"{h}:{r // 60:02d}:{r % 60:02d}" if h else f"{r // 60}:{r % 60:02d}")


class _Progress:
    """One line per finished (seed, arm) with the elapsed time and an ETA
    from the mean wall time of the units finished in this run."""

    def __init__(self, total: int, done: int, log: Callable[[str], None]):
        self.total, self.done, self.log = total, done, log
        self.t0 = time.perf_counter()
        self.ran = 0

    def skip(self, n: int = 1) -> None:
        self.done += n

    def finish(self, text: str) -> None:
        self.done += 1
        self.ran += 1
        el = time.perf_counter() - self.t0
        left = self.total - self.done
        eta = el / self.ran * left
        self.log(f"[{self.done}/{self.total}] {text} | elapsed {_fmt_time(el)}, ETA {_fmt_time(eta)}")


def _settings_record(s: DemoSettings, arms: List[StudyArm]) -> Dict[str, Any]:
    return _io.json_clean({"settings": s.to_dict(), "arms": [dataclasses.asdict(a) for a in arms]})


def _run_seed(out: str, seed: int, base: DemoSettings, arms: List[StudyArm], ref, tok, task, prog: _Progress,
              log: Callable[[str], None], demo_arm: str, keep_models: bool) -> None:
    from ..pipeline import evaluate_samples

    s = dataclasses.replace(base, seed=seed).seeded()
    seed_dir = os.path.join(out, f"seed{seed}")
    todo = [a for a in arms if not os.path.exists(_result_path(out, seed, a.name))]
    ref_done = os.path.exists(_result_path(out, seed, "reference"))
    prog.skip((len(arms) - len(todo)) + (1 if ref_done else 0))
    if not todo and ref_done:
        log(f"seed {seed}: every arm has its result in {seed_dir}; skipped")
        return
    os.makedirs(seed_dir, exist_ok=True)
    # the same folder must not mix results of different settings
    rec = _settings_record(s, arms)
    rec_path = os.path.join(seed_dir, "settings.json")
    if os.path.exists(rec_path):
        old = _io.read_json(rec_path)
        if old.get("settings") != rec["settings"]:
            raise ValueError(f"out: {seed_dir} holds results of other settings ({rec_path}); use another --out folder")
    _io.write_json(rec_path, rec, indent=1)

    train_problems = task_problems(task, s.n_train, "train", seed)
    eval_problems = task_problems(task, s.n_eval, s.eval_split, seed)
    samples, pre = presample_stage(seed_dir, s, ref, train_problems, tok, progress=False, log=lambda m: None)
    _io.write_json(os.path.join(seed_dir, "presample.json"), _io.json_clean(pre), indent=1)

    # the reference: evaluated once per seed; its stored outputs serve later runs
    ref_dir = os.path.join(seed_dir, "reference")
    if ref_done:
        ref_res = evaluate_samples(os.path.join(ref_dir, "eval.jsonl"), name="reference", seed=seed)
    else:
        ref_res = evaluate_stage(ref, "reference", eval_problems, s, tok, progress=False)
        _io.write_jsonl(os.path.join(ref_dir, "eval.jsonl"), ref_res.samples)
        entry = dict(reference_entry(ref_res, task), arm="reference", seed=seed, eval_seconds=ref_res.seconds,
                     seconds=ref_res.seconds, presample=pre)
        _io.write_json(os.path.join(ref_dir, "result.json"), _io.json_clean(entry), indent=1)
        prog.finish(f"seed {seed} reference: pre-sampled in {pre['seconds']:.0f} s, evaluated in {ref_res.seconds:.0f} s; "
                    f"accuracy {100 * ref_res.accuracy:.1f}%, length {ref_res.mean_length:.1f}")

    # the baselines' (and m = 2's) step count: that of the demo's O1-Pruner arm
    demo = next(a for a in study_arms([], s.lam) if a.name == _lam_name(s.lam))
    n_demo = len(_arm_data(demo, samples, s, None)[0])
    target_steps = -(-n_demo // s.o1pruner.batch_size) * s.o1pruner.epochs

    for arm in todo:
        arm_dir = os.path.join(seed_dir, arm.name)
        os.makedirs(arm_dir, exist_ok=True)
        data, cfg = _arm_data(arm, samples, s, arm_dir)
        if s.match_steps and arm.name != demo_arm:
            cfg = matched_config(cfg, len(data), target_steps)
        tr, _hist, train_s = train_stage(ref, data, tok, cfg, os.path.join(arm_dir, "train"), progress=False)
        res = evaluate_stage(tr.model, arm.name, eval_problems, s, tok, progress=False)
        row = comparison_rows(ref_res, {arm.name: res}, seed)[arm.name]
        entry = compared_entry(ref_res, res, row, task)
        entry.update(arm=arm.name, seed=seed, method=arm.method, lam=("auto" if arm.auto else arm.lam),
                     final_lam=tr.lam if arm.auto else None, steps=tr.total_steps, epochs=cfg.epochs,
                     train_units=len(data), train_seconds=train_s, eval_seconds=res.seconds,
                     seconds=train_s + res.seconds)
        _io.write_jsonl(os.path.join(arm_dir, "eval.jsonl"), res.samples)
        _io.write_json(os.path.join(arm_dir, "result.json"), _io.json_clean(entry), indent=1)
        # the resumable checkpoints are no longer needed (11 MB + 23 MB each); the final model
        # (11 MB) only with keep_models
        shutil.rmtree(os.path.join(arm_dir, "train", "checkpoints"), ignore_errors=True)
        if not keep_models:
            shutil.rmtree(os.path.join(arm_dir, "train", "model"), ignore_errors=True)
        prog.finish(f"seed {seed} {arm.name}: {tr.total_steps} steps, train {train_s:.0f} s + eval {res.seconds:.0f} s; "
                    f"length {100 * entry['delta_length']:+.1f}%, accuracy {100 * entry['delta_accuracy']:+.1f} points, "
                    f"AES {entry['aes']:.2f}")


# ---- aggregation ------------------------------------------------------------------------------

def _stat(values: Sequence[Optional[float]]) -> Dict[str, Any]:
    """Mean, 95% t-interval and 95% prediction interval (where one more
    seed should land) of per-seed values; NaN/None values are left out
    and counted."""
    from ..pipeline import t_interval

    v = [float(x) for x in values if x is not None and math.isfinite(float(x))]
    mean = float(np.mean(v)) if v else None
    ci = t_interval(v) if len(v) >= 2 else (None, None)
    pi = t_interval(v, prediction=True) if len(v) >= 2 else (None, None)
    return {"mean": mean, "ci": list(ci), "prediction": list(pi), "n": len(v), "values": list(values),
            "left_out": len(values) - len(v)}


def summarise_study(results: Dict[int, Dict[str, Dict[str, Any]]], arms: List[StudyArm], demo_arm: str) -> Dict[str, Any]:
    """The cross-seed tables of a study from its per-(seed, arm) results
    ({seed: {arm or "reference": result.json dict}}): per arm the mean and
    95% t-interval of each metric, the paired AES differences of each
    O1-Pruner arm against each baseline, the lambda curve, the per-level
    cut, and the checklist of the issue's criteria."""
    from ..pipeline import paired_t_interval

    seeds = sorted(results)
    metrics = ("accuracy", "mean_length", "delta_length", "delta_accuracy", "aes", "steps", "seconds")
    summary: Dict[str, Any] = {"reference": {m: _stat([results[s]["reference"][m] for s in seeds
                                                        if "reference" in results[s]])
                                             for m in ("accuracy", "mean_length", "seconds")}}
    for a in arms:
        have = [s for s in seeds if a.name in results[s]]
        summary[a.name] = {m: _stat([results[s][a.name].get(m) for s in have]) for m in metrics}
        summary[a.name]["seeds"] = have
        summary[a.name]["label"] = a.label

    # paired differences within seeds (AES): O1-Pruner arm minus baseline
    paired: List[Dict[str, Any]] = []
    names = {a.name for a in arms}
    for a in arms:
        if a.method != "o1pruner":
            continue
        for base in ("sft_shortest", "dpo"):
            if base not in names:
                continue
            pairs = [(results[s][a.name]["aes"], results[s][base]["aes"]) for s in seeds
                     if a.name in results[s] and base in results[s]]
            pairs = [(x, y) for x, y in pairs if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)]
            if not pairs:
                continue
            x, y = zip(*pairs)
            mean, ci = paired_t_interval(x, y)
            paired.append({"arm": a.name, "baseline": base, "metric": "aes", "mean_difference": mean,
                           "ci": [None if not math.isfinite(c) else c for c in ci], "n": len(pairs),
                           "differences": [xi - yi for xi, yi in pairs]})

    lam_arms = sorted([a for a in arms if a.method == "o1pruner" and not a.auto and a.samples_per_problem == "demo"],
                      key=lambda a: a.lam)
    curve = [{"lam": a.lam, "arm": a.name, **{m: summary[a.name][m] for m in ("mean_length", "delta_length",
                                                                           "delta_accuracy", "aes")}}
             for a in lam_arms if summary[a.name]["delta_length"]["n"]]

    # per level: relative length change, accuracy change, checks written
    levels = sorted({b["bucket"] for s in seeds for r in results[s].values() for b in r.get("per_level", [])})
    per_level: Dict[str, Any] = {}
    for key in ["reference"] + [a.name for a in arms]:
        rows = []
        for lv in levels:
            def vals(field):
                out = []
                for s in seeds:
                    r = results[s].get(key)
                    if r is None:
                        continue
                    b = next((b for b in r.get("per_level", []) if b["bucket"] == lv), None)
                    out.append(None if b is None else b.get(field))
                return out
            row = {"level": lv, "accuracy": _stat(vals("accuracy")), "mean_length": _stat(vals("mean_length")),
                   "mean_passes": _stat(vals("mean_passes"))}
            if key != "reference":
                row.update(delta_length=_stat(vals("delta_length")), delta_accuracy=_stat(vals("delta_accuracy")))
            rows.append(row)
        per_level[key] = rows

    out = {"summary": summary, "paired": paired, "lambda_curve": curve, "levels": levels, "per_level": per_level}
    out["checklist"] = _checklist(out, results, arms, demo_arm)
    return out


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:+.1f}"


def _ci_s(c, scale=100.0, fmt="{:+.1f}") -> str:
    if not c or c[0] is None or c[1] is None:
        return ""
    return " [" + fmt.format(scale * c[0]) + ", " + fmt.format(scale * c[1]) + "]"


def _checklist(agg: Dict[str, Any], results, arms: List[StudyArm], demo_arm: str) -> List[Dict[str, Any]]:
    """The issue's criteria ("What the results must show"), each computed:
    ``met`` True / False, or None where an arm it needs was not run."""
    summ = agg["summary"]
    names = {a.name for a in arms}
    items: List[Dict[str, Any]] = []

    def add(criterion, met, numbers):
        items.append({"criterion": criterion, "met": None if met is None else bool(met), "numbers": numbers})

    def missing(criterion, what):
        add(criterion, None, f"not evaluated: arm {what} not in this study")

    d = summ.get(demo_arm)
    c = "O1-Pruner (the demo's settings): mean length change <= -30% vs the reference"
    if d and d["delta_length"]["n"]:
        dl = d["delta_length"]
        add(c, dl["mean"] <= -0.30, f"{_pct(dl['mean'])}%{_ci_s(dl['ci'])} over {dl['n']} seeds")
    else:
        missing(c, demo_arm)
    c = "O1-Pruner: accuracy >= reference - 1 point"
    if d and d["delta_accuracy"]["n"]:
        da = d["delta_accuracy"]
        lv = agg["per_level"][demo_arm]
        gains = ", ".join(f"L{r['level']} {_pct(r['delta_accuracy']['mean'])}" for r in lv if r["delta_accuracy"]["n"])
        add(c, da["mean"] >= -POINT, f"{_pct(da['mean'])} points{_ci_s(da['ci'])}; accuracy change per level "
                                     f"(the paper's shape is a gain): {gains}")
    else:
        missing(c, demo_arm)
    c = "O1-Pruner: AES >= 0.3"
    if d and d["aes"]["n"]:
        add(c, d["aes"]["mean"] >= 0.3, f"{d['aes']['mean']:.2f}{_ci_s(d['aes']['ci'], 1.0, '{:.2f}')}")
    else:
        missing(c, demo_arm)
    for base, label in (("sft_shortest", "SFT-shortest"), ("dpo", "DPO")):
        c = f"O1-Pruner beats {label} on AES: 95% interval of the paired difference above 0"
        p = next((p for p in agg["paired"] if p["arm"] == demo_arm and p["baseline"] == base), None)
        if p is None:
            missing(c, f"{demo_arm} or {base}")
        else:
            lo = p["ci"][0]
            add(c, lo is not None and lo > 0,
                f"difference {p['mean_difference']:+.2f}{_ci_s(p['ci'], 1.0, '{:+.2f}')} over {p['n']} seeds"
                + ("" if lo is not None else " (one seed: no interval)"))
    levels = agg["levels"]
    c = "Difficulty-aware: relative length cut on the easiest level larger than on the hardest"
    if d and levels and len(levels) >= 2:
        lv = {r["level"]: r for r in agg["per_level"][demo_arm]}
        e, h = lv[levels[0]]["delta_length"]["mean"], lv[levels[-1]]["delta_length"]["mean"]
        add(c, None if e is None or h is None else e < h, f"level {levels[0]} {_pct(e)}%, level {levels[-1]} {_pct(h)}%")
    else:
        missing(c, demo_arm)
    c = ("Hard levels keep the checks that help them: on the upper half of the levels O1-Pruner writes >= 1 check on "
         "average and its accuracy is >= the reference's - 1 point")
    if d and levels:
        hard = levels[len(levels) // 2 + (len(levels) % 2):] or levels[-1:]
        lv = {r["level"]: r for r in agg["per_level"][demo_arm]}
        rl = {r["level"]: r for r in agg["per_level"]["reference"]}
        ok, parts = True, []
        for L in hard:
            p, da = lv[L]["mean_passes"]["mean"], lv[L]["delta_accuracy"]["mean"]
            pr = rl[L]["mean_passes"]["mean"]
            ok = ok and p is not None and da is not None and p >= 1 and da >= -POINT
            parts.append(f"L{L}: checks {p if p is None else round(p, 2)} (reference {pr if pr is None else round(pr, 2)}), "
                         f"accuracy {_pct(da)} points")
        add(c, ok, "; ".join(parts))
    else:
        missing(c, demo_arm)
    curve = agg["lambda_curve"]
    c = "Lambda: mean length monotone (non-decreasing) in lambda"
    if len(curve) >= 2:
        ls = [r["mean_length"]["mean"] for r in curve]
        add(c, all(b >= a for a, b in zip(ls, ls[1:])),
            ", ".join(f"lambda {r['lam']:g}: {r['mean_length']['mean']:.1f} ({_pct(r['delta_length']['mean'])}%)" for r in curve))
    else:
        missing(c, "(two lambdas)")
    c = "Lambda = 0 loses accuracy (mean change < -1 point)"
    r0 = next((r for r in curve if r["lam"] == 0), None)
    if r0 is None:
        missing(c, _lam_name(0.0))
    else:
        da = r0["delta_accuracy"]
        add(c, da["mean"] < -POINT, f"{_pct(da['mean'])} points{_ci_s(da['ci'])}")
    c = "Lambda >= 2 keeps accuracy (mean change >= -1 point at every lambda >= 2)"
    hi = [r for r in curve if r["lam"] >= 2]
    if not hi:
        missing(c, "(lambda >= 2)")
    else:
        add(c, all(r["delta_accuracy"]["mean"] >= -POINT for r in hi),
            ", ".join(f"lambda {r['lam']:g}: {_pct(r['delta_accuracy']['mean'])}{_ci_s(r['delta_accuracy']['ci'])}" for r in hi))
    c = 'lam="auto" holds accuracy >= reference - 1 point on every seed'
    if "o1pruner_auto" in names and summ["o1pruner_auto"]["delta_accuracy"]["n"]:
        v = [x for x in summ["o1pruner_auto"]["delta_accuracy"]["values"] if x is not None]
        seeds = summ["o1pruner_auto"]["seeds"]
        add(c, min(v) >= -POINT, "per seed: " + ", ".join(f"{s}: {_pct(x)}" for s, x in zip(seeds, v)))
    else:
        missing(c, "o1pruner_auto")
    c = ("Any seed lands inside the study's spread: leaving each seed out, its O1-Pruner length and accuracy change "
         "fall inside the 95% prediction interval of the other seeds")
    if d and d["delta_length"]["n"] >= 3:
        from ..pipeline import t_interval

        seeds = d["seeds"]
        bad = []
        for m in ("delta_length", "delta_accuracy"):
            v = d[m]["values"]
            for i, s in enumerate(seeds):
                lo, hi = t_interval([x for j, x in enumerate(v) if j != i], prediction=True)
                if not (lo <= v[i] <= hi):
                    bad.append(f"seed {s} {m} {_pct(v[i])} outside [{_pct(lo)}, {_pct(hi)}]")
        dl, da = d["delta_length"]["prediction"], d["delta_accuracy"]["prediction"]
        add(c, not bad, ("; ".join(bad) if bad else "every seed inside")
            + f"; a new seed's 95% prediction interval: length{_ci_s(dl)}%, accuracy{_ci_s(da)} points")
    else:
        missing(c, f"{demo_arm} on >= 3 seeds")
    return items


# ---- report ----------------------------------------------------------------------------------

def _mean_ci(st: Dict[str, Any], scale: float = 100.0, fmt: str = "{:+.1f}") -> str:
    if st is None or st.get("mean") is None:
        return "n/a"
    return fmt.format(scale * st["mean"]) + _ci_s(st["ci"], scale, fmt)


def format_report(study: Dict[str, Any]) -> str:
    """report.md of a study.json dict."""
    summ, arms = study["summary"], study["arms"]
    seeds = study["seeds"]
    L: List[str] = [f"# O1-Pruner study: {len(seeds)} seeds ({', '.join(map(str, seeds))}), {study['split']} split", ""]
    if len(seeds) < 5:
        L += [f"Only {len(seeds)} seed(s): the issue's criteria ask for >= 5; the intervals are wide or absent.", ""]
    s = study["settings"]
    L += [f"Task {study['task']}; {s['n_train']} train problems x K = {s['k']} samples (T = {s['temperature']}, top-p "
          f"{s['top_p']}), {s['n_eval']} {study['split']} problems, greedy. Every arm trains from the same samples of its "
          f"seed; the baselines and m = 2 train as many steps as the demo's O1-Pruner arm ({study['demo_arm']}). "
          "Means over seeds; [95% Student-t interval across seeds]. Length change in %, accuracy change in points.", ""]
    ref = summ["reference"]
    L += ["## Per arm", "",
          "| arm | seeds | accuracy % | mean length | length change % | accuracy change (points) | AES | steps |",
          "|---|---|---|---|---|---|---|---|",
          f"| reference | {ref['accuracy']['n']} | {_mean_ci(ref['accuracy'], 100, '{:.1f}')} | "
          f"{_mean_ci(ref['mean_length'], 1, '{:.1f}')} | | | | |"]
    for a in arms:
        m = summ[a["name"]]
        L.append(f"| {a['label']} | {m['delta_length']['n']} | {_mean_ci(m['accuracy'], 100, '{:.1f}')} | "
                 f"{_mean_ci(m['mean_length'], 1, '{:.1f}')} | {_mean_ci(m['delta_length'])} | "
                 f"{_mean_ci(m['delta_accuracy'])} | {_mean_ci(m['aes'], 1, '{:.2f}')} | "
                 f"{_num(m['steps']['mean'])} |")
    L += ["", "## Paired differences within seeds (AES, O1-Pruner arm minus baseline)", "",
          "| O1-Pruner arm | baseline | seeds | mean difference [95% t-interval] | per seed |", "|---|---|---|---|---|"]
    for p in study["paired"]:
        L.append(f"| {p['arm']} | {p['baseline']} | {p['n']} | {p['mean_difference']:+.2f}"
                 f"{_ci_s(p['ci'], 1.0, '{:+.2f}')} | {', '.join(f'{x:+.2f}' for x in p['differences'])} |")
    L += ["", "## Lambda curve", "", "| lambda | mean length | length change % | accuracy change (points) | AES |",
          "|---|---|---|---|---|"]
    for r in study["lambda_curve"]:
        L.append(f"| {r['lam']:g} | {_mean_ci(r['mean_length'], 1, '{:.1f}')} | {_mean_ci(r['delta_length'])} | "
                 f"{_mean_ci(r['delta_accuracy'])} | {_mean_ci(r['aes'], 1, '{:.2f}')} |")
    levels = study["levels"]
    L += ["", "## Per-level relative length cut (%, mean over seeds)", "",
          "| arm | " + " | ".join(f"L{lv}" for lv in levels) + " | easiest minus hardest | checks per level |",
          "|---|" + "---|" * (len(levels) + 2)]
    for key in ["reference"] + [a["name"] for a in arms]:
        rows = {r["level"]: r for r in study["per_level"][key]}
        checks = " / ".join("n/a" if rows[lv]["mean_passes"]["mean"] is None else f"{rows[lv]['mean_passes']['mean']:.2f}"
                            for lv in levels)
        if key == "reference":
            L.append("| reference | " + " | ".join("" for _ in levels) + " | | " + checks + " |")
            continue
        cuts = [rows[lv]["delta_length"]["mean"] for lv in levels]
        gap = "n/a" if len(levels) < 2 or cuts[0] is None or cuts[-1] is None else f"{100 * (cuts[0] - cuts[-1]):+.1f}"
        L.append(f"| {summ[key]['label']} | " + " | ".join(_mean_ci(rows[lv]["delta_length"], 100, "{:+.0f}")
                                                            for lv in levels) + f" | {gap} | {checks} |")
    L += ["", "## Criteria (issue 16, 'What the results must show')", ""]
    for it in study["checklist"]:
        mark = {True: "met", False: "NOT met", None: "not evaluated"}[it["met"]]
        L.append(f"- **{mark}**: {it['criterion']}. {it['numbers']}")
    t = study["timing"]
    L += ["", "## Time", "",
          f"This run: {t['seconds_this_run']:.0f} s. Per seed, mean over the seeds run: pre-sampling "
          f"{_num(t['presample_seconds'])} s; per arm (train + evaluate): "
          + ", ".join(f"{k} {_num(v)} s" for k, v in t["arm_seconds"].items()) + "."]
    if study.get("plots"):
        L += ["", "## Plots", ""] + [f"![{p}]({p})" for p in study["plots"]]
    return "\n".join(L) + "\n"


def _num(v) -> str:
    return "n/a" if v is None else f"{v:.0f}"


# ---- the study --------------------------------------------------------------------------------

def run_study(
    out_dir: PathLike = "study_out",
    seeds: Optional[Sequence[int]] = None,
    *,
    split: str = "test",
    quick: bool = False,
    lams: Optional[Sequence[float]] = None,
    arms: Optional[Sequence[str]] = None,
    settings: Optional[DemoSettings] = None,
    reference: Any = None,
    plots: bool = True,
    keep_models: bool = False,
    log: Callable[[str], None] = print,
) -> Dict[str, Any]:
    """Run (or resume) the study: for each seed, pre-sample once, evaluate
    the reference, then train and evaluate every arm from the same samples;
    write ``OUT/seed{S}/{arm}/result.json`` (atomically; a present one is
    skipped on rerun), then ``OUT/study.json``, ``OUT/report.md`` and the
    plots.

    Parameters
    ----------
    out_dir : path
    seeds : sequence of int, optional
        Default 0..4 (``quick``: 0, 1).
    split : {"test", "validation"}
        Evaluation split (settings are chosen on validation).
    quick : bool
        Tiny settings (``QUICK_OVERRIDES``, ``QUICK_LAMS``, ``QUICK_SEEDS``):
        for tests and CI, the numbers are noise.
    lams : sequence of float, optional
        Lambdas of the ablation (default ``STUDY_LAMS``, ``quick``:
        ``QUICK_LAMS``); the demo's lambda is always added.
    arms : sequence of str, optional
        Run only these arms (names from :func:`study_arms`).
    settings : DemoSettings, optional
        The settings every seed starts from (default
        :func:`study_settings`); its ``seed`` is replaced per seed and
        ``eval_split`` by `split`.
    reference : TinyLM or path, optional
        Default: the task's shipped reference.
    plots : bool
        Write the PNG figures (matplotlib).
    keep_models : bool
        Keep each arm's final model (``seed{S}/{arm}/train/model``, 11 MB);
        by default only its results, outputs and training log stay.
    log : callable
        Receives the progress lines (one per finished arm).

    Returns
    -------
    dict
        The content of study.json.
    """
    if split not in STUDY_SPLITS:
        raise ValueError(f"split: must be one of {list(STUDY_SPLITS)}, got {split!r}")
    seeds = _check_seeds(QUICK_SEEDS if (seeds is None and quick) else (STUDY_SEEDS if seeds is None else seeds))
    lams = _check_lams(QUICK_LAMS if (lams is None and quick) else (STUDY_LAMS if lams is None else lams))
    base = study_settings(quick, split) if settings is None else dataclasses.replace(settings, eval_split=split)
    if not isinstance(base, DemoSettings):
        raise TypeError(f"settings: must be a DemoSettings, got {type(base).__name__}")
    _check_settings(base)
    all_arms = study_arms(lams, base.lam)
    chosen = _select_arms(all_arms, arms)
    demo_arm = _lam_name(base.lam)
    if plots:
        from .plots import require_matplotlib

        require_matplotlib()
    from ..tasks import CharTokenizer, get_task

    out = os.fspath(out_dir)
    os.makedirs(out, exist_ok=True)
    t0 = time.perf_counter()
    tok = CharTokenizer()
    task = get_task(base.task)
    ref = _load_reference(reference, base.task)
    prog = _Progress(len(seeds) * (len(chosen) + 1), 0, log)
    log(f"study: {len(seeds)} seeds x {len(chosen)} arms + the reference, {split} split, in {out}")
    for seed in seeds:
        _run_seed(out, seed, base, chosen, ref, tok, task, prog, log, demo_arm, keep_models)

    results = {s: {name: _io.read_json(_result_path(out, s, name)) for name in ["reference"] + [a.name for a in chosen]}
               for s in seeds}
    agg = summarise_study(results, chosen, demo_arm)
    pre = [_io.read_json(os.path.join(out, f"seed{s}", "presample.json"))["seconds"] for s in seeds]
    study: Dict[str, Any] = {
        "seeds": seeds, "split": split, "task": task.name, "quick": quick, "lams": lams, "demo_arm": demo_arm,
        "arms": [dataclasses.asdict(a) for a in chosen],
        "settings": {k: v for k, v in base.to_dict().items() if k != "seed"},
        "results": {str(s): results[s] for s in seeds},
        **agg,
        "timing": {"seconds_this_run": time.perf_counter() - t0,
                   "presample_seconds": float(np.mean(pre)),
                   "arm_seconds": {name: agg["summary"][name]["seconds"]["mean"]
                                   for name in ["reference"] + [a.name for a in chosen]}},
        "conventions": ("delta_length = (L - L_ref) / L_ref; delta_accuracy = Acc - Acc_ref (fraction); AES: the paper's "
                        "formula; per arm: mean over seeds with a 95% Student-t interval across seeds ('ci') and a 95% "
                        "prediction interval for one more seed ('prediction'); paired: t-interval of the per-seed "
                        "difference"),
    }
    study = _io.json_clean(study)
    _io.write_json(os.path.join(out, "study.json"), study, indent=1)
    if plots:
        from .plots import save_figure, study_levels, study_lambda_curve, study_tradeoff

        figs = (("study_tradeoff.png", study_tradeoff), ("study_levels.png", study_levels),
                ("study_lambda.png", study_lambda_curve))
        study["plots"] = []
        for name, fn in figs:
            fig = fn(study)
            if fig is not None:
                save_figure(fig, os.path.join(out, name))
                study["plots"].append(name)
        _io.write_json(os.path.join(out, "study.json"), study, indent=1)
    atomic_write(os.path.join(out, "report.md"), format_report(study))
    return study
