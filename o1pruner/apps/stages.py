"""The stages of a demo run, shared by ``o1pruner demo`` (:mod:`.demo`) and
``o1pruner study`` (:mod:`.study`): pre-sample the reference, fine-tune a copy,
evaluate greedily, and the results.json entries of a model."""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

import numpy as np

from .. import data as _io
from ..models.generator import TinyLMGenerator
from ..train import TrainConfig, Trainer

if TYPE_CHECKING:  # pragma: no cover
    from .demo import DemoSettings

__all__ = ["DEMO_TEMPLATE", "copy_model", "presample_stage", "matched_config", "train_stage", "evaluate_stage",
           "compared_entry", "reference_entry", "comparison_rows", "task_problems", "load_reference_model"]


#: The built-in task's prompt (``o1pruner.tasks.PROMPT_TEMPLATE``) in the
#: pipeline's ``{problem}`` form: the same prompt for sampling, training and
#: evaluation.
DEMO_TEMPLATE = "Q:{problem}\n"


def copy_model(model):
    """An independent copy of a TinyLM (parameters only, fresh optimizer)."""
    from ..models import TinyLM

    m = TinyLM(model.config, seed=None)
    m.load_state_dict(model.state_dict())
    return m


def task_problems(task, n: int, split: str, seed: int, levels=None) -> List[Dict[str, Any]]:
    """Problems of a built-in task as pipeline records
    (``problem_id``, ``problem``, ``ground_truth_answer``, ``difficulty``);
    `levels` (1-based, default all) as in ``ArithmeticTask.problems``."""
    return [{"problem_id": f"{split}-{i}", "problem": p.expr, "ground_truth_answer": str(p.answer), "difficulty": p.level}
            for i, p in enumerate(task.problems(n, split=split, seed=seed, levels=levels))]


def load_reference_model(reference, task: str = "addition"):
    from ..models import TinyLM

    if reference is None:
        try:
            from ..models import load_reference
        except ImportError:
            raise RuntimeError("reference: the shipped reference model is not in this build "
                               "(o1pruner.models.load_reference); pass reference=CHECKPOINT_DIR") from None
        return load_reference(task)
    if isinstance(reference, TinyLM):
        return reference
    return TinyLM.load(os.fspath(reference), optimizer=False)


def _passes(result, task) -> List[Dict[str, Any]]:
    """Mean verification passes per level of a result on a built-in task."""
    per: Dict[Any, List[int]] = {}
    for s in result.samples:
        per.setdefault(s["bucket"], []).append(task.parse(s["solution"] or "")["n_checks"])
    return [{"bucket": b, "mean_passes": float(np.mean(v))} for b, v in sorted(per.items())]


def _ci(x) -> List[Optional[float]]:
    return [None if (v is None or (isinstance(v, float) and math.isnan(v))) else float(v) for v in x]


def _model_entry(res, row=None, buckets=None, passes=None) -> Dict[str, Any]:
    d = {"accuracy": res.accuracy, "accuracy_ci": _ci(res.accuracy_ci), "mean_length": res.mean_length,
         "length_ci": _ci(res.length_ci), "n": res.n, "tokens_per_s": res.tokens_per_s, "eval_seconds": res.seconds}
    if row is not None:
        d.update(delta_length=row["delta_length"], delta_length_ci=_ci(row["delta_length_ci"]),
                 delta_accuracy=row["delta_accuracy"], delta_accuracy_ci=_ci(row["delta_accuracy_ci"]),
                 aes=row["aes"], aes_ci=_ci(row["aes_ci"]))
    d["per_level"] = buckets if buckets is not None else [
        {"bucket": b["bucket"], "n": b["n"], "accuracy": b["accuracy"], "accuracy_ci": _ci(b["accuracy_ci"]),
         "mean_length": b["mean_length"], "length_ci": _ci(b["length_ci"])} for b in res.buckets]
    if passes is not None:
        pm = {p["bucket"]: p["mean_passes"] for p in passes}
        for b in d["per_level"]:
            b["mean_passes"] = pm.get(b["bucket"])
    return d


# ---- stages (shared by the demo and the study, o1pruner.apps.study) ------------------------

def presample_stage(out: str, s: "DemoSettings", ref, train_problems, tok, *, progress: bool = True,
                    log: Callable[[str], None] = print):
    """Step 1: `s.k` samples of each training problem from the reference
    (``out/samples.jsonl``, resumable). Returns (records, {"accuracy",
    "mean_length", "seconds", "resumed"}); fails when no sample is
    correct (no accuracy signal, no SFT data)."""
    from ..pipeline import presample

    t = time.perf_counter()
    samples_path = os.path.join(out, "samples.jsonl")
    found = _count_records(samples_path)
    gen = TinyLMGenerator(ref, tok, max_new_tokens=s.max_new_tokens)
    samples = presample(gen, train_problems, s.k, tokenizer=tok, template=DEMO_TEMPLATE,
                        out=samples_path, batch_size=max(1, 512 // s.k), seed=s.seed,
                        generate_kwargs={"temperature": s.temperature, "top_p": s.top_p}, save_token_ids=True,
                        progress=progress)
    seconds = time.perf_counter() - t
    acc = float(np.mean([r["correct"] for r in samples]))
    mlen = float(np.mean([r["length"] for r in samples]))
    if found:
        log(f"resumed: pre-sampling found in {samples_path}, {min(found, len(samples))} samples"
            + (f" ({len(samples) - min(found, len(samples))} drawn now)" if len(samples) > found else " (nothing left to draw)"))
    if acc == 0:
        raise RuntimeError(
            f"pre-sampling: the reference model solved none of its {len(samples)} samples, so the accuracy term of "
            "the weights is constant and the SFT-shortest baseline has no data; the samples are kept in "
            f"{samples_path}. Use a stronger reference (--reference), or more problems and samples "
            "(--set n_train=..., --set k=...)")
    log(f"pre-sampled {len(samples)} solutions of {len(train_problems)} problems in {seconds:.0f} s: "
        f"accuracy {100 * acc:.1f}%, mean length {mlen:.1f}")
    return samples, {"accuracy": acc, "mean_length": mlen, "seconds": seconds, "resumed": bool(found)}


def matched_config(cfg: TrainConfig, n_units: int, target_steps: int) -> TrainConfig:
    """`cfg` with the whole number of epochs (>= 1) over `n_units` samples
    (or pairs) whose step count is nearest to `target_steps`
    (``match_steps``: the baselines train as many steps as O1-Pruner)."""
    per_epoch = max(1, -(-n_units // cfg.batch_size))
    return dataclasses.replace(cfg, epochs=max(1, int(round(target_steps / per_epoch))))


def train_stage(ref, data, tok, cfg: TrainConfig, out_dir: str, *, progress: bool = True):
    """Fine-tune a copy of the reference on `data` (resumes from a
    checkpoint in `out_dir`). Returns (trainer, history, seconds)."""
    t = time.perf_counter()
    tr = Trainer(copy_model(ref), data, tok, cfg, out_dir=out_dir, progress=progress)
    hist = tr.train()
    return tr, hist, time.perf_counter() - t


def evaluate_stage(model, name: str, eval_problems, s: "DemoSettings", tok, *, progress: bool = True):
    """Greedy evaluation of `model` on the evaluation problems (EvalResult;
    its ``seconds`` is the wall time)."""
    from ..pipeline import evaluate

    g = TinyLMGenerator(model, tok, max_new_tokens=s.max_new_tokens)
    return evaluate(g, eval_problems, name=name, tokenizer=tok, template=DEMO_TEMPLATE, batch_size=512,
                    generate_kwargs={"temperature": 0.0}, seed=s.seed, progress=progress)


def compared_entry(ref_res, res, row: Dict[str, Any], task) -> Dict[str, Any]:
    """A fine-tuned model's entry of results.json: accuracy, length, their
    changes and AES (`row`, from :func:`comparison_rows`), and per level
    the changes and the checks written."""
    from ..pipeline import compare_buckets

    lv = [{"bucket": b["bucket"], "n": b["n"], "accuracy": b["accuracy"], "mean_length": b["mean_length"],
           "delta_length": b["delta_length"], "delta_accuracy": b["delta_accuracy"]}
          for b in compare_buckets(ref_res, res)]
    return _model_entry(res, row, lv, passes=_passes(res, task))


def reference_entry(ref_res, task) -> Dict[str, Any]:
    """The reference's entry of results.json."""
    return _model_entry(ref_res, passes=_passes(ref_res, task))


def _count_records(path: str) -> int:
    """Complete JSONL records in `path` (0 when it does not exist): the
    earlier work a resumed run finds."""
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return 0
    try:
        return len(_io.read_jsonl(path, torn_tail="drop"))
    except ValueError:
        return 0  # presample reports what is wrong with it


def comparison_rows(ref, new: Dict[str, Any], seed: int) -> Dict[str, Dict[str, Any]]:
    """compare() rows of fine-tuned models ({name: EvalResult}) against the
    reference's EvalResult; when the reference has accuracy 0 (AES
    undefined) the deltas are still given and AES is NaN."""
    from ..pipeline import compare

    if ref.accuracy > 0:
        return {r["model"]: r for r in compare(ref, new, seed=seed, as_pandas=False).rows}
    nan2 = (float("nan"), float("nan"))
    return {k: {"model": k, "delta_length": (v.mean_length - ref.mean_length) / ref.mean_length,
                "delta_accuracy": v.accuracy - ref.accuracy, "aes": float("nan"), "delta_length_ci": nan2,
                "delta_accuracy_ci": nan2, "aes_ci": nan2} for k, v in new.items()}
