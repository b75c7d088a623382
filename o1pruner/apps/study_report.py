"""The cross-seed tables of ``o1pruner study`` (:mod:`.study`): means and
Student-t intervals across seeds, paired differences within seeds, the lambda
curve, the per-level cut, the computed checklist of issue 16's criteria, and
report.md."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .study import StudyArm

__all__ = ["summarise_study", "format_report", "POINT"]

#: One accuracy point (accuracy is a fraction).
POINT = 0.01


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


def summarise_study(results: Dict[int, Dict[str, Dict[str, Any]]], arms: List["StudyArm"], demo_arm: str) -> Dict[str, Any]:
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


def _checklist(agg: Dict[str, Any], results, arms: List["StudyArm"], demo_arm: str) -> List[Dict[str, Any]]:
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
        missing(c, "o1pruner_lam0")
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
