"""Measured behaviour of a model on the built-in arithmetic task, per
difficulty level: accuracy, mean length, verification passes written, with
greedy decoding and sampled at the demo's pre-sampling temperature (1).

    python -m dev.reference_report                 # the shipped reference
    python -m dev.reference_report --checkpoint DIR # another checkpoint

prints the tables the README quotes. Problems are drawn from the held-out
split (never seen in training), in equal numbers per level.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from o1pruner.tasks.arithmetic import ArithmeticTask, CharTokenizer, parse_solution

__all__ = ["level_report", "format_report", "main"]

#: Enough for three passes on the hardest level (~160 tokens).
MAX_NEW_TOKENS = 230


def level_report(
    model: Any,
    task: Optional[ArithmeticTask] = None,
    per_level: int = 200,
    seed: int = 123,
    *,
    tokenizer: Optional[CharTokenizer] = None,
    max_new_tokens: int = MAX_NEW_TOKENS,
    batch_size: int = 256,
    temperature: float = 0.0,
    top_p: float = 1.0,
    sample_seed: int = 0,
) -> Dict[str, Any]:
    """Decoding of held-out problems (greedy by default), summarised per level.

    Prompts are encoded as the pipeline encodes them: the beginning-of-sequence
    token, then ``tokenizer.encode("Q:<expr>\\n")``.

    Parameters
    ----------
    model : TinyLM
        Anything with TinyLM's ``generate(prompts, tokenizer, max_new_tokens=,
        temperature=, batch_size=)``.
    task : ArithmeticTask, optional
        Default ``ArithmeticTask()``.
    per_level : int
        Held-out problems per level.
    seed : int
        Seed of the problem draw.
    tokenizer : CharTokenizer, optional
    max_new_tokens : int
    batch_size : int
        Prompts decoded together.
    temperature, top_p : float
        Decoding settings (0: greedy). ``temperature=1`` is the pre-sampling
        temperature of ``o1pruner demo``.
    sample_seed : int
        Seed of the sampling (with ``temperature > 0``).

    Returns
    -------
    dict
        ``levels``: one dict per level with ``level``, ``n``, ``accuracy``,
        ``mean_length`` (tokens of the response, end-of-sequence token not
        counted, as :func:`o1pruner.count_tokens` counts them), ``checks``
        (mean verification passes), ``guess_accuracy`` (first attempt right),
        ``well_formed`` (share following the format), ``truncated`` (share
        hitting `max_new_tokens`); ``all``: the same over every problem;
        ``seconds``: wall time of the decoding; ``temperature``, ``top_p``.
    """
    task = task if task is not None else ArithmeticTask()
    tok = tokenizer if tokenizer is not None else CharTokenizer()
    problems = task.problems(per_level * task.n_levels, split="heldout", seed=seed)
    t0 = time.perf_counter()
    prompts = [[tok.bos_token_id] + tok.encode(p.prompt) for p in problems]
    gen = model.generate(prompts, tok, max_new_tokens=max_new_tokens, temperature=float(temperature), top_p=float(top_p),
                         seed=int(sample_seed), batch_size=batch_size)
    seconds = time.perf_counter() - t0
    texts = gen.texts
    correct = task.grade(texts, problems)
    lengths = np.array([len(tok.encode(t)) for t in texts], dtype=np.float64)
    parsed = [parse_solution(t) for t in texts]
    checks = np.array([q["n_checks"] for q in parsed], dtype=np.float64)
    guess_ok = np.array([q["guess"] == p.answer for q, p in zip(parsed, problems)])
    well = np.array([q["well_formed"] for q in parsed])
    trunc = ~np.asarray(gen.stopped, dtype=bool)
    levels = np.array([p.level for p in problems])

    def row(sel) -> Dict[str, Any]:
        return {"n": int(sel.sum()), "accuracy": float(correct[sel].mean()), "mean_length": float(lengths[sel].mean()),
                "checks": float(checks[sel].mean()), "guess_accuracy": float(guess_ok[sel].mean()),
                "well_formed": float(well[sel].mean()), "truncated": float(trunc[sel].mean())}

    rows = []
    for lv in range(1, task.n_levels + 1):
        r = {"level": lv}
        r.update(row(levels == lv))
        rows.append(r)
    return {"levels": rows, "all": row(np.ones(len(problems), bool)), "seconds": seconds,
            "per_level": int(per_level), "seed": int(seed), "temperature": float(temperature), "top_p": float(top_p)}


def format_report(report: Dict[str, Any]) -> str:
    """The report as a Markdown table."""
    lines = ["| level | problems | accuracy | mean length | passes | guess right | well formed |",
             "|---|---|---|---|---|---|---|"]
    for r in report["levels"] + [dict(report["all"], level="all")]:
        lines.append(f"| {r['level']} | {r['n']} | {r['accuracy']:.3f} | {r['mean_length']:.1f} | {r['checks']:.2f} "
                     f"| {r['guess_accuracy']:.2f} | {r['well_formed']:.2f} |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m dev.reference_report",
        description="Greedy accuracy, mean length and verification passes per difficulty level of the built-in "
                    "reference model (or a checkpoint) on held-out arithmetic problems.")
    ap.add_argument("--checkpoint", default=None, help="checkpoint folder (default: the shipped reference model)")
    ap.add_argument("--per-level", type=int, default=200, help="held-out problems per level (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=123, help="seed of the problem draw (default: %(default)s)")
    ap.add_argument("--temperature", type=float, default=1.0,
                    help="temperature of the sampled report, printed after the greedy one (default: %(default)s, the "
                         "pre-sampling temperature of `o1pruner demo`; 0: greedy only)")
    ap.add_argument("--threads", type=int, default=None, help="threads of the C core (default: all CPUs)")
    a = ap.parse_args(argv)
    from o1pruner import _config
    from o1pruner.models import TinyLM, load_reference

    if a.threads is not None:
        _config.set_num_threads(a.threads)
    model = load_reference("arithmetic") if a.checkpoint is None else TinyLM.load(a.checkpoint, optimizer=False)
    rep = level_report(model, per_level=a.per_level, seed=a.seed)
    print(f"Greedy decoding, {a.per_level} held-out problems per level ({rep['seconds']:.1f} s):\n")
    print(format_report(rep))
    if a.temperature > 0:
        rep = level_report(model, per_level=a.per_level, seed=a.seed, temperature=a.temperature)
        print(f"\nSampled at temperature {a.temperature:g}, one sample per problem ({rep['seconds']:.1f} s):\n")
        print(format_report(rep))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
