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
from .demo import (DEMO_LAM, DemoSettings, check_settings, load_reference_model, compared_entry, comparison_rows,
                   evaluate_stage, matched_config, presample_stage, reference_entry, task_problems, train_stage)

from .study_report import format_report, summarise_study

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
    # the same folder must not mix results of different settings (checked before anything is skipped)
    rec = _settings_record(s, arms)
    rec_path = os.path.join(seed_dir, "settings.json")
    if os.path.exists(rec_path):
        old = _io.read_json(rec_path)
        if old.get("settings") != rec["settings"]:
            raise ValueError(f"out: {seed_dir} holds results of other settings ({rec_path}); use another --out folder")
    todo = [a for a in arms if not os.path.exists(_result_path(out, seed, a.name))]
    ref_done = os.path.exists(_result_path(out, seed, "reference"))
    prog.skip((len(arms) - len(todo)) + (1 if ref_done else 0))
    if not todo and ref_done:
        log(f"seed {seed}: every arm has its result in {seed_dir}; skipped")
        return
    os.makedirs(seed_dir, exist_ok=True)
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
    check_settings(base)
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
    ref = load_reference_model(reference, base.task)
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
