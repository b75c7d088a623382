"""What a model does on the addition task, per level: free decoding and a
forced number of checks.

The forced-checks table is the task's proof of property: the same model,
made to write exactly k = 0, 1, 2, 3 checks (the line starts ``check`` or
``so the answer is`` are written for it; the model writes everything else),
is more accurate with more checks on hard levels and equally accurate on easy
ones. Run it on any checkpoint::

    python -m o1pruner.tasks.addition_report --model reference --forced-checks
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .addition import AdditionTask, SumProblem, parse_sum_solution
from .arithmetic import CharTokenizer
from .common import ANSWER_PREFIX

__all__ = ["MAX_NEW_TOKENS", "decode_report", "forced_checks_report", "format_decode_report",
           "format_forced_report", "main"]

#: Response tokens at most (a 4-number problem with 3 checks takes ~150).
MAX_NEW_TOKENS = 230


def _prompts(tok: CharTokenizer, problems: Sequence[SumProblem]) -> List[List[int]]:
    return [[tok.bos_token_id] + tok.encode(p.prompt) for p in problems]


def _summarise(task: AdditionTask, problems: Sequence[SumProblem], texts: Sequence[str],
               lengths: np.ndarray, truncated: np.ndarray) -> Dict[str, Any]:
    correct = task.grade(list(texts), problems)
    parsed = [parse_sum_solution(t) for t in texts]
    rows = []
    for lv in sorted({p.level for p in problems}):
        idx = [i for i, p in enumerate(problems) if p.level == lv]
        checks = [r == problems[i].answer for i in idx for r in parsed[i]["results"][1:]]
        rows.append({
            "level": lv,
            "n": len(idx),
            "accuracy": float(np.mean(correct[idx])),
            "mean_length": float(np.mean(lengths[idx])),
            "checks": float(np.mean([parsed[i]["n_checks"] for i in idx])),
            "guess_accuracy": float(np.mean([parsed[i]["guess"] == problems[i].answer for i in idx])),
            "check_accuracy": float(np.mean(checks)) if checks else float("nan"),
            "consistent": float(np.mean([parsed[i]["consistent"] for i in idx])),
            "truncated": float(np.mean(truncated[idx])),
        })
    return {"levels": rows, "accuracy": float(np.mean(correct)), "mean_length": float(np.mean(lengths))}


def decode_report(model: Any, task: Optional[AdditionTask] = None, *, split: str = "validation",
                  per_level: int = 200, seed: int = 123, temperature: float = 0.0, top_p: float = 1.0,
                  sample_seed: int = 0, max_new_tokens: int = MAX_NEW_TOKENS,
                  tokenizer: Optional[CharTokenizer] = None, batch_size: int = 256) -> Dict[str, Any]:
    """Free decoding of `per_level` problems of each level of `split`, summarised per level.

    Returns a dict with ``levels`` (per level: ``accuracy``, ``mean_length``
    in response tokens without the end-of-sequence token, ``checks``,
    ``guess_accuracy``, ``check_accuracy`` (share of check lines whose result
    is the true sum), ``consistent`` (verdicts and answer follow the task's
    rule from what was written), ``truncated``), overall ``accuracy`` and
    ``mean_length``, the settings and ``seconds``.
    """
    task = task if task is not None else AdditionTask()
    tok = tokenizer if tokenizer is not None else CharTokenizer()
    problems = task.problems(per_level * task.n_levels, split=split, seed=seed)
    t0 = time.perf_counter()
    gen = model.generate(_prompts(tok, problems), tok, max_new_tokens=max_new_tokens, temperature=float(temperature),
                         top_p=float(top_p), seed=int(sample_seed), batch_size=batch_size)
    texts = list(gen.texts)
    lengths = np.array([len(tok.encode(t)) for t in texts], dtype=np.float64)
    out = _summarise(task, problems, texts, lengths, ~np.asarray(gen.stopped, bool))
    out.update(split=split, per_level=per_level, temperature=float(temperature), top_p=float(top_p),
               seconds=time.perf_counter() - t0)
    return out


def forced_generate(model: Any, problems: Sequence[SumProblem], n_checks: int, *,
                    tokenizer: Optional[CharTokenizer] = None, temperature: float = 0.0, top_p: float = 1.0,
                    sample_seed: int = 0, batch_size: int = 256, max_line_tokens: int = 48) -> List[str]:
    """Responses with exactly `n_checks` checks: the model writes each line,
    the words that start a line (``check`` / ``so the answer is``) are
    written for it."""
    tok = tokenizer if tokenizer is not None else CharTokenizer()
    nl = tok.encode("\n")[0]
    stops = [nl, tok.eos_token_id]
    contexts = _prompts(tok, problems)
    texts = [""] * len(problems)

    def line(prefix: str, step: int) -> None:
        pre = tok.encode(prefix) if prefix else []
        ids = [c + pre for c in contexts]
        g = model.generate(ids, tok, max_new_tokens=max_line_tokens, temperature=float(temperature),
                           top_p=float(top_p), seed=int(sample_seed) * 1000 + step, batch_size=batch_size,
                           stop_token_id=stops)
        for b, seq in enumerate(g.sequences()):
            body = [int(t) for t in seq if int(t) not in stops]
            contexts[b] = contexts[b] + pre + body + [nl]
            texts[b] += prefix + tok.decode(body) + "\n"

    line("", 0)  # the guess line
    for i in range(n_checks):
        line("check ", i + 1)
    line(ANSWER_PREFIX, n_checks + 1)
    return [t[:-1] for t in texts]  # no newline after the answer line


def forced_checks_report(model: Any, task: Optional[AdditionTask] = None, *, checks: Sequence[int] = (0, 1, 2, 3),
                         split: str = "validation", per_level: int = 200, seed: int = 123,
                         temperature: float = 0.0, top_p: float = 1.0, sample_seed: int = 0,
                         tokenizer: Optional[CharTokenizer] = None, batch_size: int = 256) -> Dict[str, Any]:
    """Accuracy and length per level when the model is made to write exactly
    k checks, for each k in `checks` (same problems for every k).

    Returns ``{"checks": {k: summary}}`` with the summaries of
    :func:`decode_report`, and the settings.
    """
    task = task if task is not None else AdditionTask()
    tok = tokenizer if tokenizer is not None else CharTokenizer()
    problems = task.problems(per_level * task.n_levels, split=split, seed=seed)
    t0 = time.perf_counter()
    out: Dict[str, Any] = {"checks": {}}
    for k in checks:
        texts = forced_generate(model, problems, int(k), tokenizer=tok, temperature=temperature, top_p=top_p,
                                sample_seed=sample_seed, batch_size=batch_size)
        lengths = np.array([len(tok.encode(t)) for t in texts], dtype=np.float64)
        out["checks"][int(k)] = _summarise(task, problems, texts, lengths, np.zeros(len(texts), bool))
    out.update(split=split, per_level=per_level, temperature=float(temperature), top_p=float(top_p),
               seconds=time.perf_counter() - t0)
    return out


def format_decode_report(rep: Dict[str, Any]) -> str:
    """Markdown table of :func:`decode_report`."""
    rows = ["| level | accuracy | length | checks | guess right | check lines right | consistent | truncated |",
            "|---|---|---|---|---|---|---|---|"]
    for r in rep["levels"]:
        rows.append(f"| {r['level']} | {r['accuracy']:.3f} | {r['mean_length']:.1f} | {r['checks']:.2f} | "
                    f"{r['guess_accuracy']:.3f} | {r['check_accuracy']:.3f} | {r['consistent']:.3f} | {r['truncated']:.3f} |")
    rows.append(f"| all | {rep['accuracy']:.3f} | {rep['mean_length']:.1f} | | | | | |")
    return "\n".join(rows)


def format_forced_report(rep: Dict[str, Any]) -> str:
    """Markdown table of :func:`forced_checks_report`: accuracy (length) per level and k."""
    ks = sorted(rep["checks"])
    levels = [r["level"] for r in rep["checks"][ks[0]]["levels"]]
    rows = ["| level | " + " | ".join(f"k={k}: acc (len)" for k in ks) + " |",
            "|---|" + "---|" * len(ks)]
    for j, lv in enumerate(levels):
        cells = [f"{rep['checks'][k]['levels'][j]['accuracy']:.3f} ({rep['checks'][k]['levels'][j]['mean_length']:.0f})"
                 for k in ks]
        rows.append(f"| {lv} | " + " | ".join(cells) + " |")
    rows.append("| all | " + " | ".join(f"{rep['checks'][k]['accuracy']:.3f} ({rep['checks'][k]['mean_length']:.0f})"
                                      for k in ks) + " |")
    return "\n".join(rows)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m o1pruner.tasks.addition_report",
                                 description="Per-level behaviour of a model on the addition task: free decoding "
                                             "(greedy and sampled) and, with --forced-checks, accuracy against a "
                                             "forced number of checks.")
    ap.add_argument("--model", required=True, help="checkpoint folder of a TinyLM")
    ap.add_argument("--split", default="validation", choices=["train", "validation", "test"])
    ap.add_argument("--per-level", type=int, default=200)
    ap.add_argument("--seed", type=int, default=123, help="seed of the problem draw")
    ap.add_argument("--temperature", type=float, default=0.6, help="sampling temperature of the sampled tables")
    ap.add_argument("--top-p", type=float, default=0.9)
    ap.add_argument("--forced-checks", action="store_true", help="also the forced-checks tables")
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args(argv)
    from ..models import TinyLM

    if a.threads:
        from .. import _config

        _config.set_num_threads(a.threads)
    model = TinyLM.load(a.model, optimizer=False)
    for name, t in (("greedy", 0.0), (f"sampled T={a.temperature}, top_p={a.top_p}", a.temperature)):
        rep = decode_report(model, split=a.split, per_level=a.per_level, seed=a.seed, temperature=t,
                            top_p=a.top_p if t else 1.0)
        print(f"### {name}, {a.per_level} {a.split} problems per level ({rep['seconds']:.0f} s)\n")
        print(format_decode_report(rep) + "\n", flush=True)
    if a.forced_checks:
        for name, t in (("greedy", 0.0), (f"sampled T={a.temperature}, top_p={a.top_p}", a.temperature)):
            rep = forced_checks_report(model, split=a.split, per_level=a.per_level, seed=a.seed, temperature=t,
                                       top_p=a.top_p if t else 1.0)
            print(f"### forced checks, {name}: accuracy (mean length) ({rep['seconds']:.0f} s)\n")
            print(format_forced_report(rep) + "\n", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
