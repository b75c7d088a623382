"""Expected O1-Pruner reward by level and number of checks, from pre-sampled
addition-task samples: which policy the weights favour at each lambda.

    python -m dev.reward_table demo_out/samples.jsonl --lam 0 2 5

For each problem the reward of a sample is the public code's
``mean_length / length - 1 + lambda * (correct - mean_correct)`` over that
problem's K samples, clipped to (-2, 4) (before the dataset normalisation);
the table gives, per level and number of checks k, the mean reward, the
share of samples with k checks and their accuracy.
"""

from __future__ import annotations

import argparse
import collections
import sys
from typing import Optional, Sequence

import numpy as np

from o1pruner.data import read_jsonl
from o1pruner.tasks import parse_sum_solution


def reward_table(samples, lam: float, clip=(-2.0, 4.0)):
    """{(level, k): (mean reward, n, accuracy)} for one lambda."""
    by = collections.defaultdict(list)
    for r in samples:
        by[r["problem_id"]].append(r)
    cells = collections.defaultdict(list)
    for rs in by.values():
        length = np.array([r["length"] for r in rs], float)
        acc = np.array([float(r["correct"]) for r in rs])
        rew = np.clip(length.mean() / length - 1 + lam * (acc - acc.mean()), *clip)
        for r, w in zip(rs, rew):
            k = parse_sum_solution(r["solution"] or "")["n_checks"]
            cells[(r["difficulty"], k)].append((float(w), float(r["correct"])))
    return {key: (float(np.mean([w for w, _ in v])), len(v), float(np.mean([c for _, c in v])))
            for key, v in cells.items()}


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dev.reward_table", description=__doc__.split("\n\n")[0])
    ap.add_argument("samples", help="samples.jsonl of the addition task (o1pruner demo's or presample's)")
    ap.add_argument("--lam", type=float, nargs="+", default=[0.0, 2.0, 5.0])
    a = ap.parse_args(argv)
    samples = read_jsonl(a.samples)
    levels = sorted({r["difficulty"] for r in samples})
    for lam in a.lam:
        tab = reward_table(samples, lam)
        print(f"\nlambda = {lam:g}: mean reward (share of the level's samples, accuracy) by checks k\n")
        print("| level | " + " | ".join(f"k={k}" for k in range(4)) + " |\n|---|" + "---|" * 4)
        for lv in levels:
            n_lv = sum(n for (l, _), (_, n, _) in tab.items() if l == lv)
            cells = []
            for k in range(4):
                if (lv, k) in tab:
                    w, n, c = tab[(lv, k)]
                    cells.append(f"{w:+.2f} ({n / n_lv:.2f}, {c:.2f})")
                else:
                    cells.append("-")
            print(f"| {lv} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
