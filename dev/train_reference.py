"""Train the built-in reference model from scratch: supervised fine-tuning of
a :class:`~o1pruner.models.TinyLM` on the long-thought solutions of
:mod:`o1pruner.tasks.arithmetic`.

The checkpoint shipped with the package (:func:`o1pruner.models.load_reference`)
was made by this module with its defaults::

    python -m dev.train_reference --out ref_ckpt --seed 0

Every choice (data, order, initialisation, schedule) is derived from the
seed, so a run is reproducible for a given seed and thread count (the
thread count changes the order of floating-point sums, hence the last bits).

Sequences are the beginning-of-sequence token, the prompt, the response and
the end-of-sequence token (``[bos] + tokenizer.encode(prompt)``, the way the
pipeline encodes prompts: :class:`o1pruner.training.TinyLMGenerator` and
:class:`o1pruner.training.Trainer` with their default ``add_bos=True``); the loss is the mean negative log-likelihood of the response tokens
(and the end-of-sequence token), the prompt is not scored.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from o1pruner.tasks.arithmetic import ArithmeticTask, CharTokenizer, Problem
from o1pruner.models.tinylm import TinyLM, TinyLMConfig

__all__ = ["SFTSettings", "reference_config", "encode_examples", "pad_batch", "train_sft", "train_reference",
           "measure_behaviour", "main"]


def reference_config(tokenizer: Optional[CharTokenizer] = None, **overrides: Any) -> TinyLMConfig:
    """The architecture of the shipped reference model.

    Parameters
    ----------
    tokenizer : CharTokenizer, optional
        Gives the vocabulary size and special ids (default: a new
        :class:`~o1pruner.tasks.CharTokenizer`).
    **overrides
        Fields of :class:`TinyLMConfig` to change (e.g. ``hidden_size``).
    """
    tok = tokenizer if tokenizer is not None else CharTokenizer()
    kw: Dict[str, Any] = dict(
        vocab_size=tok.vocab_size,
        hidden_size=128,
        intermediate_size=384,
        num_hidden_layers=4,
        num_attention_heads=4,
        max_position_embeddings=256,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    kw.update(overrides)
    return TinyLMConfig(**kw)


@dataclass
class SFTSettings:
    """Hyper-parameters of the supervised fine-tuning run.

    Attributes
    ----------
    steps : int
        Optimiser steps.
    batch_size : int
        Sequences per step (each a freshly drawn training problem).
    lr : float
        Peak learning rate (linear warmup, then cosine decay to
        ``lr * min_lr_ratio``).
    min_lr_ratio : float
        Final learning rate as a fraction of `lr`.
    warmup : int
        Warmup steps.
    weight_decay : float
        Decoupled weight decay of the weight matrices and the embedding (not of
        biases and norm weights).
    betas : (float, float)
        AdamW betas.
    max_grad_norm : float
        Global gradient-norm clip.
    """

    steps: int = 3000
    batch_size: int = 32
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup: int = 100
    weight_decay: float = 0.1
    betas: Tuple[float, float] = (0.9, 0.95)
    max_grad_norm: float = 1.0

    def lr_at(self, step: int) -> float:
        """Learning rate of 0-based step `step`."""
        warm = min(1.0, (step + 1) / max(1, self.warmup))
        frac = min(1.0, step / max(1, self.steps - 1))
        cos = self.min_lr_ratio + (1.0 - self.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * frac))
        return self.lr * warm * cos


def encode_examples(tokenizer: Any, pairs: Sequence[Tuple[str, str]]) -> List[Tuple[List[int], int]]:
    """Token ids of (prompt, response) pairs: ``[bos] + encode(prompt) +
    encode(response) + [eos]``, with the length of ``[bos] + encode(prompt)``
    (positions predicting it are not scored)."""
    out = []
    for prompt, response in pairs:
        p = [tokenizer.bos_token_id] + tokenizer.encode(prompt)
        r = tokenizer.encode(response)
        out.append((p + r + [tokenizer.eos_token_id], len(p)))
    return out


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Right-pad id lists to (B, T) int64 ids and an int8 attention mask."""
    T = max(len(s) for s in seqs)
    ids = np.full((len(seqs), T), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), T), dtype=np.int8)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = 1
    return ids, mask


def _sft_targets(ids: np.ndarray, mask: np.ndarray, prompt_lengths: Sequence[int]) -> np.ndarray:
    from o1pruner.models.tinylm import next_token_targets

    return next_token_targets(ids, mask, prompt_lengths=list(prompt_lengths))


def _decay_views(model: TinyLM) -> List[np.ndarray]:
    """Views of the parameters that get weight decay: matrices and the embedding."""
    return [v for name, v in model.named_parameters() if v.ndim >= 2]


def train_sft(
    model: TinyLM,
    task: ArithmeticTask,
    settings: SFTSettings,
    *,
    tokenizer: Optional[CharTokenizer] = None,
    seed: int = 0,
    style: str = "long",
    max_seconds: Optional[float] = None,
    eval_every: int = 0,
    evaluate: Optional[Callable[[TinyLM, int], Dict[str, Any]]] = None,
    progress: bool = True,
    log: Optional[Callable[[str], None]] = None,
) -> Dict[str, Any]:
    """Supervised fine-tuning of `model` on freshly drawn solutions.

    Each step draws ``settings.batch_size`` training problems (train split,
    all levels in equal shares) and one solution of `style` for each; the
    stream depends only on `seed`.

    Parameters
    ----------
    model : TinyLM
        Trained in place.
    task : ArithmeticTask
    settings : SFTSettings
    tokenizer : CharTokenizer, optional
    seed : int
        Seed of the data stream.
    style : {"long", "concise"}
        Which solutions to imitate.
    max_seconds : float, optional
        Stop after this much wall time (the run is then shorter than the
        schedule and not the reproducible one; a warning is logged).
    eval_every : int
        Call `evaluate(model, step)` every this many steps (0: only at the end
        when `evaluate` is given).
    evaluate : callable, optional
        ``evaluate(model, step) -> dict`` of metrics to log.
    progress : bool
        tqdm progress bar.
    log : callable, optional
        Where to write log lines (default: tqdm.write or print).

    Returns
    -------
    dict
        ``steps`` done, ``seconds`` (wall), ``cpu_seconds``, ``tokens``
        (scored tokens), ``loss`` (mean of the last 50 steps), ``history``
        (list of logged dicts), ``stopped_early``.
    """
    tok = tokenizer if tokenizer is not None else CharTokenizer()
    s = settings
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=s.steps, desc="SFT", unit="step", dynamic_ncols=True)
    if log is None:
        if bar is not None:
            from tqdm.auto import tqdm as _t

            log = _t.write
        else:
            log = lambda m: print(m, flush=True)  # noqa: E731
    decay = _decay_views(model)
    chunk_steps = 50  # problems are drawn 50 steps at a time
    history: List[Dict[str, Any]] = []
    losses: List[float] = []
    t0, c0 = time.perf_counter(), time.process_time()
    n_tokens = 0
    stopped = False
    step = 0
    examples: List[Tuple[List[int], int]] = []
    try:
        for step in range(s.steps):
            j = step % chunk_steps
            if j == 0:
                n = chunk_steps * s.batch_size
                chunk_seed = [int(seed), 7, step // chunk_steps]
                probs = task.problems(n, split="train", seed=int(np.random.SeedSequence(chunk_seed).generate_state(1)[0]),
                                      unique=False)
                order = np.random.default_rng(chunk_seed).permutation(n)
                probs = [probs[i] for i in order]  # levels mixed within a batch, not in a fixed cycle
                pairs = task.sft_examples(probs, seed=int(np.random.SeedSequence(chunk_seed + [1]).generate_state(1)[0]),
                                          style=style)
                examples = encode_examples(tok, pairs)
            batch = examples[j * s.batch_size:(j + 1) * s.batch_size]
            ids, mask = pad_batch([e[0] for e in batch], tok.pad_token_id)
            targets = _sft_targets(ids, mask, [e[1] for e in batch])
            lr = s.lr_at(step)
            st = model.train_step(ids, mask, targets, lr=lr, betas=s.betas, weight_decay=0.0,
                                  max_grad_norm=s.max_grad_norm)
            if s.weight_decay:
                f = np.float32(1.0 - lr * s.weight_decay)
                for v in decay:
                    v *= f
            n_tokens += st["tokens"]
            losses.append(st["loss"])
            if bar is not None:
                bar.update(1)
                if step % 10 == 0:
                    bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}", lr=f"{lr:.1e}")
            last = step == s.steps - 1
            if evaluate is not None and ((eval_every and (step + 1) % eval_every == 0) or last):
                rec = {"step": step + 1, "loss": float(np.mean(losses[-50:])),
                       "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0}
                rec.update(evaluate(model, step + 1))
                history.append(rec)
            elif (step + 1) % 250 == 0 and bar is None:
                log(f"step {step + 1}/{s.steps} loss {np.mean(losses[-50:]):.4f} lr {lr:.2e} "
                    f"{time.perf_counter() - t0:.0f}s")
            if max_seconds is not None and time.perf_counter() - t0 > max_seconds and not last:
                stopped = True
                log(f"time limit reached at step {step + 1} of {s.steps}: this is not the full schedule")
                if evaluate is not None:
                    rec = {"step": step + 1, "loss": float(np.mean(losses[-50:])),
                           "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0}
                    rec.update(evaluate(model, step + 1))
                    history.append(rec)
                break
    finally:
        if bar is not None:
            bar.close()
    return {
        "steps": step + 1,
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - c0,
        "tokens": n_tokens,
        "loss": float(np.mean(losses[-50:])) if losses else float("nan"),
        "history": history,
        "stopped_early": stopped,
    }


def train_reference(
    out: Optional[str] = None,
    *,
    seed: int = 0,
    minutes: Optional[float] = None,
    settings: Optional[SFTSettings] = None,
    task: Optional[ArithmeticTask] = None,
    config: Optional[TinyLMConfig] = None,
    threads: Optional[int] = None,
    eval_every: int = 1000,
    eval_per_level: int = 50,
    dtype: str = "float16",
    progress: bool = True,
    report_per_level: int = 200,
) -> Tuple[TinyLM, Dict[str, Any]]:
    """Train the reference model from scratch (SFT on long-thought solutions).

    Parameters
    ----------
    out : str, optional
        Folder to save the checkpoint in (``config.json``, ``model.safetensors``
        in `dtype`, ``training.json`` with the settings and the final report).
    seed : int
        Seed of the initialisation and of the data stream.
    minutes : float, optional
        Wall-time limit of the training loop (see :func:`train_sft`).
    settings : SFTSettings, optional
        Default: ``SFTSettings()``, the shipped model's.
    task : ArithmeticTask, optional
        Default: ``ArithmeticTask()`` (the package's levels and check law).
    config : TinyLMConfig, optional
        Default: :func:`reference_config`.
    threads : int, optional
        Threads of the C core (default: leave the current setting).
    eval_every : int
        Greedy evaluation on held-out problems every this many steps (and at
        the end); 0 evaluates only at the end.
    eval_per_level : int
        Held-out problems per level in those evaluations.
    dtype : {"float16", "float32", "bfloat16"}
        Storage type of the saved parameters.
    progress : bool
        tqdm progress bars and log lines.
    report_per_level : int
        Held-out problems per level of the final measurement (0: none) of the
        saved checkpoint (parameters rounded to `dtype`): greedy and sampled
        at temperature 1 (the demo's pre-sampling), the tables of
        ``python -m dev.reference_report`` (same problems);
        stored as ``behaviour`` in training.json.

    Returns
    -------
    (TinyLM, dict)
        The model (float32, as trained; the saved copy is rounded to `dtype`)
        and the training record.
    """
    from o1pruner import _config
    from dev.reference_report import level_report, format_report

    if threads is not None:
        _config.set_num_threads(int(threads))
    tok = CharTokenizer()
    task = task if task is not None else ArithmeticTask()
    settings = settings if settings is not None else SFTSettings()
    config = config if config is not None else reference_config(tok)
    model = TinyLM(config, seed=int(seed))

    def evaluate(m: TinyLM, step: int) -> Dict[str, Any]:
        rep = level_report(m, task=task, per_level=eval_per_level, seed=10_000 + int(seed), tokenizer=tok)
        msg = f"-- step {step}: held-out greedy, {eval_per_level} problems per level\n" + format_report(rep)
        if progress:
            from tqdm.auto import tqdm

            tqdm.write(msg)
        else:
            print(msg, flush=True)
        return {"report": rep}

    rec = train_sft(model, task, settings, tokenizer=tok, seed=int(seed),
                    max_seconds=None if minutes is None else 60.0 * float(minutes),
                    eval_every=int(eval_every), evaluate=evaluate, progress=progress)
    info = {
        "seed": int(seed),
        "settings": dataclasses.asdict(settings),
        "config": config.to_dict(),
        "task": {"levels": [dataclasses.asdict(lv) for lv in task.levels], "check_probs": list(task.check_probs),
                 "max_value": task.max_value, "heldout_fraction": task.heldout_fraction},
        "threads": _config.get_num_threads(),
        "dtype": dtype,
        **{k: v for k, v in rec.items()},
    }
    if out is not None:
        model.save(out, optimizer=False, dtype=dtype)
    if report_per_level:
        info["behaviour"] = measure_behaviour(TinyLM.load(out, optimizer=False) if out is not None else model,
                                              task=task, per_level=int(report_per_level), tokenizer=tok,
                                              progress=progress)
    if out is not None:
        from o1pruner.io import atomic_write

        atomic_write(os.path.join(out, "training.json"), (json.dumps(info, indent=1, sort_keys=True) + "\n").encode())
    return model, info


def measure_behaviour(model: TinyLM, *, task: Optional[ArithmeticTask] = None, per_level: int = 200,
                      tokenizer: Optional[CharTokenizer] = None, progress: bool = False) -> Dict[str, Any]:
    """Per-level behaviour of `model` on held-out problems: ``{"greedy": report,
    "sampled": report}`` (:func:`dev.reference_report.level_report`
    with its default problem seed; sampled at temperature 1, sampling seed 0).
    The shipped checkpoint's is in ``reference_info("arithmetic")["behaviour"]``."""
    from dev.reference_report import format_report, level_report

    out = {"greedy": level_report(model, task=task, per_level=per_level, tokenizer=tokenizer),
           "sampled": level_report(model, task=task, per_level=per_level, tokenizer=tokenizer, temperature=1.0)}
    if progress:
        for k, rep in out.items():
            print(f"-- final checkpoint, {k}, {per_level} held-out problems per level\n" + format_report(rep), flush=True)
    return out


def _parse_probs(text: str) -> Tuple[float, ...]:
    return tuple(float(x) for x in text.split(","))


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m dev.train_reference",
        description="Train the built-in reference model (TinyLM, SFT on the arithmetic task's long-thought "
                    "solutions) from scratch. The defaults reproduce the checkpoint shipped with the package.")
    ap.add_argument("--out", default="reference_model", help="folder of the checkpoint (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="seed of initialisation and data (default: %(default)s)")
    ap.add_argument("--minutes", type=float, default=None,
                    help="stop the training loop after this many minutes of wall time (default: run the whole schedule)")
    ap.add_argument("--steps", type=int, default=None, help="optimiser steps (default: %d)" % SFTSettings.steps)
    ap.add_argument("--batch-size", type=int, default=None, help="sequences per step (default: %d)" % SFTSettings.batch_size)
    ap.add_argument("--lr", type=float, default=None, help="peak learning rate (default: %g)" % SFTSettings.lr)
    ap.add_argument("--threads", type=int, default=None, help="threads of the C core (default: all CPUs)")
    ap.add_argument("--eval-every", type=int, default=1000, help="steps between held-out evaluations (default: %(default)s)")
    ap.add_argument("--eval-per-level", type=int, default=50, help="held-out problems per level (default: %(default)s)")
    ap.add_argument("--report-per-level", type=int, default=200,
                    help="held-out problems per level of the final greedy and sampled measurement of the saved "
                         "checkpoint (default: %(default)s; 0: none)")
    ap.add_argument("--check-probs", default=None, help="research: P(k) of k = 0.. verification passes, comma-separated")
    ap.add_argument("--hidden-size", type=int, default=None, help="research: model width")
    ap.add_argument("--intermediate-size", type=int, default=None, help="research: MLP width")
    ap.add_argument("--layers", type=int, default=None, help="research: decoder layers")
    ap.add_argument("--dtype", default="float16", choices=["float16", "float32", "bfloat16"],
                    help="storage type of the saved parameters (default: %(default)s)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    a = ap.parse_args(argv)
    kw = {}
    for name in ("steps", "batch_size", "lr"):
        v = getattr(a, name)
        if v is not None:
            kw[name] = v
    settings = SFTSettings(**kw)
    task = ArithmeticTask(check_probs=_parse_probs(a.check_probs)) if a.check_probs else ArithmeticTask()
    over = {}
    if a.hidden_size:
        over["hidden_size"] = a.hidden_size
    if a.intermediate_size:
        over["intermediate_size"] = a.intermediate_size
    if a.layers:
        over["num_hidden_layers"] = a.layers
    config = reference_config(**over)
    _, info = train_reference(a.out, seed=a.seed, minutes=a.minutes, settings=settings, task=task, config=config,
                              threads=a.threads, eval_every=a.eval_every, eval_per_level=a.eval_per_level,
                              dtype=a.dtype, progress=not a.no_progress, report_per_level=a.report_per_level)
    print(f"saved {a.out}: {info['steps']} steps in {info['seconds']:.0f} s wall "
          f"({info['cpu_seconds']:.0f} CPU-s, {info['threads']} threads), final loss {info['loss']:.4f}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
