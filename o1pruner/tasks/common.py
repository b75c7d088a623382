"""What the built-in tasks share: argument checks, the check law, near-miss
slips, grading by the last ``\\boxed{}`` and the answer line's format."""

from __future__ import annotations

import re
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["ANSWER_PREFIX", "BOXED", "answer_of_line", "parse_lines", "check_law", "grade_answers", "level_list", "near_miss",
           "require_count"]

#: Words in front of the boxed answer. They make the part of a solution that
#: every solution has (restated problem, guess, answer line) about as long as
#: one verification pass on the hardest level, so that the length term of the
#: reward (a ratio) does not drown the accuracy term there; see
#: benchmarks/feasibility.md.
ANSWER_PREFIX = "so the answer is "

BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


def answer_of_line(line: str) -> Optional[str]:
    """The boxed string of an answer line (``so the answer is \\boxed{X}``), else None."""
    if not line.startswith(ANSWER_PREFIX):
        return None
    m = BOXED.fullmatch(line[len(ANSWER_PREFIX):])
    return m.group(1) if m else None


def check_law(check_probs: Sequence[float]) -> Tuple[float, ...]:
    """Validate P(k) of k = 0.. checks: 1-d, non-negative, finite, sums to 1."""
    probs = np.asarray(check_probs, dtype=np.float64)
    if probs.ndim != 1 or probs.size < 1 or not np.all(np.isfinite(probs)) or np.any(probs < 0):
        raise ValueError("check_probs: need a 1-d sequence of non-negative finite probabilities")
    if abs(probs.sum() - 1.0) > 1e-9:
        raise ValueError(f"check_probs: must sum to 1, got {probs.sum():.6g}")
    return tuple(float(p) for p in probs)


def require_count(n: object) -> int:
    """`n` as a non-negative int, else ValueError naming it."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n: must be a non-negative int, got {n!r}")
    return int(n)


def level_list(levels: Optional[Iterable[int]], n_levels: int) -> List[int]:
    """1-based levels to draw from (default all), each checked against `n_levels`."""
    lvls = list(range(1, n_levels + 1)) if levels is None else [int(v) for v in levels]
    if not lvls:
        raise ValueError("levels: empty")
    for v in lvls:
        if not 1 <= v <= n_levels:
            raise ValueError(f"levels: level {v} out of range 1..{n_levels}")
    return lvls


def near_miss(value: int, rng: np.random.Generator, max_value: Optional[int] = None) -> int:
    """A plausible wrong result near `value` (a digit or carry slip): >= 0,
    <= `max_value` when given, and != value."""
    deltas = (1, 2, 9, 10, 11, 20)
    while True:
        d = int(deltas[rng.integers(len(deltas))])
        cand = value + d if rng.random() < 0.5 else value - d
        if cand >= 0 and (max_value is None or cand <= max_value) and cand != value:
            return cand


def grade_answers(responses: Sequence[str], answers: Sequence[object],
                  grader: Optional[Callable[[Sequence[str], Sequence[str]], Sequence[bool]]] = None) -> np.ndarray:
    """Correctness of responses against the true answers, as a bool array.

    ``grader(responses, golds) -> sequence of bool`` with golds the answers as
    strings; default: the package grader,
    :func:`o1pruner.grading.grade_responses` (last ``\\boxed{}``).
    """
    if isinstance(responses, str):
        raise TypeError("responses: expected a sequence of str, got a single str")
    if len(responses) != len(answers):
        raise ValueError(f"responses: length {len(responses)} != problems length {len(answers)}")
    golds = [str(a) for a in answers]
    if grader is None:
        from ..kernels.grading import grade_responses as fn
    else:
        fn = grader
    return np.asarray(list(fn(list(responses), golds)), dtype=bool)


def parse_lines(text: str, guess_line: "re.Pattern[str]", check_line: "re.Pattern[str]"):
    """Split a response in the tasks' format: a guess line, check lines, the answer line.

    Returns ``(guess, checks, boxed, well_formed)``: the guess as an int (the
    first group of `guess_line`) or None, the match of every check line, the
    boxed string of the answer line (which must be the last line) or None,
    and whether every line follows the format.
    """
    lines = text.split("\n")
    m = guess_line.fullmatch(lines[0]) if lines else None
    guess = int(m.group(1)) if m else None
    well = m is not None
    checks = []
    boxed = None
    for i, line in enumerate(lines[1:], 1):
        cm = check_line.match(line)
        if cm:
            checks.append(cm)
            continue
        box = answer_of_line(line)
        if box is not None and i == len(lines) - 1:
            boxed = box
            continue
        well = False
    return guess, checks, boxed, well and boxed is not None
