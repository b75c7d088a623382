"""A long-thought addition task where thinking length matters.

Problems are sums of 1-2 digit numbers at five levels of difficulty (more and
larger numbers, hence more carries and longer chains). A long-thought
solution writes a one-jump guess, then re-adds the numbers in a *different
order* a random number of times (0-3, one law for every level), compares each
result with the line before it and boxes the answer that two computations
agreed on first::

    Q:37+48+26
    37+48+26=101?
    check 37+48=85+26=111 no
    check 26+48=74+37=111 ok
    check 48+26=74+37=111 ok
    so the answer is \\boxed{111}

What is hard comes from the model, not from the data: a small model guesses
the sum of two small numbers right and the sum of four 2-digit numbers almost
never, and it slips on a step with a carry more often than on one without.
Each check is an independent computation (another order of the same numbers,
so other partial sums) whose outcome decides the answer:

* a check that disagrees with the line before it says ``no``; one that agrees
  says ``ok``;
* the answer is the result of the first ``ok`` line (two computations agreed),
  or the last line's result when no two consecutive lines agree.

So on easy problems (a reliable guess) checks change nothing and only cost
tokens, while on hard ones the first check replaces a bad guess and a third
check settles a disagreement between the first two: the accuracy of a
fixed model grows with the number of checks on hard levels and not on easy
ones (``python -m o1pruner.models.reference_report --forced-checks`` measures
it). The data teaches the comparison and the answer rule with slips injected
at the same rate on every level (a wrong guess, a wrong step in a check); a
model's own errors add the difficulty-dependent part.

Problems belong to one of three disjoint splits (train, validation, test) by a
hash of their text, whatever the seed.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from .arithmetic import PROMPT_TEMPLATE, CharTokenizer
from .common import ANSWER_PREFIX, parse_lines, check_law, grade_answers, level_list, near_miss, require_count

__all__ = [
    "SumLevel",
    "SUM_LEVELS",
    "SUM_CHECK_PROBS",
    "SPLITS",
    "SumProblem",
    "SumSolution",
    "AdditionTask",
    "parse_sum_solution",
    "CharTokenizer",
]

#: The three disjoint problem splits and their shares of all expressions.
SPLITS: Tuple[Tuple[str, float], ...] = (("train", 0.8), ("validation", 0.1), ("test", 0.1))


@dataclass(frozen=True)
class SumLevel:
    """One difficulty level: how many numbers and how many digits each.

    Attributes
    ----------
    digits : tuple of int
        Digits of each number (1 to 3), e.g. ``(2, 1)`` for ``37+5`` or
        ``5+37`` (numbers of mixed sizes come in a random order). The number
        of numbers is ``len(digits)``.
    """

    digits: Tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.digits) < 2:
            raise ValueError(f"digits: need at least 2 numbers, got {self.digits!r}")
        for d in self.digits:
            if d not in (1, 2, 3):
                raise ValueError(f"digits: each number has 1 to 3 digits, got {self.digits!r}")

    @property
    def n_numbers(self) -> int:
        return len(self.digits)


#: Default levels: 2+1 digits; 2+2+1; 2+2+2+2; 3+3+2; 3+3+3+3. Chain
#: length is harder for a small model than number size (probe 3 in
#: ``benchmarks/feasibility.md``); the shipped reference was trained on
#: exactly these, in this order.
SUM_LEVELS: Tuple[SumLevel, ...] = (
    SumLevel((2, 1)),
    SumLevel((2, 2, 1)),
    SumLevel((2, 2, 2, 2)),
    SumLevel((3, 3, 2)),
    SumLevel((3, 3, 3, 3)),
)

#: P(k) for k = 0, 1, 2, 3 checks in a long-thought solution, the same at
#: every level. The conditional probabilities of one more check are 0.75,
#: 0.7 and 0.4: greedy decoding of a model that learnt them writes two checks
#: at every level (the redundancy O1-Pruner should remove where the guess is
#: reliable), and sampling at temperature 0.6-0.7 still writes 0, 1, 2 and 3
#: checks.
SUM_CHECK_PROBS: Tuple[float, ...] = (0.25, 0.225, 0.315, 0.21)

#: Slips injected into the training solutions (the same on every level):
#: the guess is replaced by a near miss with probability ``guess_slip``, and
#: each addition step of a check with probability ``step_slip`` (the error
#: propagates to the end of that check). They teach the comparison and the
#: answer rule; they are not what makes a level hard for a model.
GUESS_SLIP = 0.3
STEP_SLIP = 0.05


def check_order(n: int, i: int) -> Tuple[int, ...]:
    """Order (indices into the numbers) in which check `i` (1-based) adds `n`
    numbers: 1 left to right, 2 right to left, 3 second number first then
    the rest left to right (for two numbers the same
    as check 2); further checks cycle."""
    idx = list(range(n))
    j = (i - 1) % 3
    if j == 0:
        return tuple(idx)
    if j == 1:
        return tuple(reversed(idx))
    return tuple([1, 0] + idx[2:])


@dataclass(frozen=True)
class SumProblem:
    """One addition problem.

    Attributes
    ----------
    numbers : tuple of int
        The numbers, left to right.
    level : int
        Difficulty level, 1-based.
    """

    numbers: Tuple[int, ...]
    level: int

    @property
    def expr(self) -> str:
        """The expression as written, e.g. ``"37+48+26"``."""
        return "+".join(str(x) for x in self.numbers)

    @property
    def answer(self) -> int:
        """The ground-truth sum."""
        return int(sum(self.numbers))

    @property
    def prompt(self) -> str:
        """The prompt (the package's one template, ``Q:{expr}\\n``)."""
        return PROMPT_TEMPLATE.format(expr=self.expr)

    def to_dict(self) -> Dict[str, object]:
        """A JSON-friendly record (prompt, answer as text, level, expr)."""
        return {"prompt": self.prompt, "answer": str(self.answer), "level": self.level, "expr": self.expr}


@dataclass(frozen=True)
class SumSolution:
    """A long-thought solution and what it contains.

    Attributes
    ----------
    text : str
        The response (what follows the prompt), without special tokens.
    results : tuple of int
        The guess, then each check's result.
    verdicts : tuple of str
        ``"ok"``/``"no"`` of each check.
    answer : int
        The boxed answer (by the answer rule).
    correct : bool
        Whether `answer` is the true sum.
    """

    text: str
    results: Tuple[int, ...]
    verdicts: Tuple[str, ...]
    answer: int
    correct: bool

    @property
    def n_checks(self) -> int:
        return len(self.verdicts)


def answer_rule(results: Sequence[int]) -> Tuple[List[str], int]:
    """Verdicts of the checks and the answer, from the guess and the check results.

    Check ``i`` says ``ok`` when its result equals the line before it
    (``results[i - 1]``). The answer is the result of the first ``ok`` line,
    or of the last line when no check said ``ok``.
    """
    if len(results) < 1:
        raise ValueError("results: need at least the guess")
    verdicts = ["ok" if results[i] == results[i - 1] else "no" for i in range(1, len(results))]
    for i, v in enumerate(verdicts, 1):
        if v == "ok":
            return verdicts, int(results[i])
    return verdicts, int(results[-1])


def _split_of(expr: str) -> str:
    h = int.from_bytes(hashlib.blake2b(expr.encode("ascii"), digest_size=8, person=b"o1p-sums").digest(), "little")
    u = h / 2.0**64
    acc = 0.0
    for name, share in SPLITS:
        acc += share
        if u < acc:
            return name
    return SPLITS[-1][0]


class AdditionTask:
    """Seeded generator of addition problems and long-thought solutions.

    Parameters
    ----------
    levels : sequence of SumLevel, optional
        Default :data:`SUM_LEVELS`.
    check_probs : sequence of float, optional
        P(k) of k = 0.. checks, one law for every level (default
        :data:`SUM_CHECK_PROBS`); must sum to 1.
    guess_slip, step_slip : float
        Injected slip rates of the training solutions (default
        :data:`GUESS_SLIP`, :data:`STEP_SLIP`).

    Examples
    --------
    >>> task = AdditionTask()
    >>> p = task.problems(5, split="train", seed=0)
    >>> [q.level for q in p]
    [1, 2, 3, 4, 5]
    >>> sol = task.render(p[2], [p[2].answer, p[2].answer + 1, p[2].answer])
    >>> sol.verdicts, sol.answer == p[2].answer
    (('no', 'no'), True)
    """

    name = "addition"
    #: The split names :meth:`problems` accepts: settings are chosen on
    #: ``"validation"``, results reported on ``"test"``.
    splits = tuple(name for name, _ in SPLITS)

    def __init__(self, levels: Optional[Sequence[SumLevel]] = None,
                 check_probs: Optional[Sequence[float]] = None,
                 guess_slip: float = GUESS_SLIP, step_slip: float = STEP_SLIP) -> None:
        self.levels: Tuple[SumLevel, ...] = tuple(SUM_LEVELS if levels is None else levels)
        if not self.levels:
            raise ValueError("levels: need at least one level")
        for i, lv in enumerate(self.levels):
            if not isinstance(lv, SumLevel):
                raise TypeError(f"levels: item {i} is {type(lv).__name__}, expected SumLevel")
        self.check_probs: Tuple[float, ...] = check_law(SUM_CHECK_PROBS if check_probs is None else check_probs)
        for name, v in (("guess_slip", guess_slip), ("step_slip", step_slip)):
            if not (isinstance(v, (int, float)) and 0.0 <= float(v) < 1.0):
                raise ValueError(f"{name}: must be in [0, 1), got {v!r}")
        self.guess_slip = float(guess_slip)
        self.step_slip = float(step_slip)

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @property
    def max_checks(self) -> int:
        return len(self.check_probs) - 1

    # ---- problems ---------------------------------------------------------

    @staticmethod
    def split_of(problem: Union[SumProblem, str]) -> str:
        """``"train"``, ``"validation"`` or ``"test"``: the split of an expression."""
        return _split_of(problem.expr if isinstance(problem, SumProblem) else str(problem))

    def _random_problem(self, level: int, rng: np.random.Generator) -> SumProblem:
        nums = []
        digits = list(self.levels[level - 1].digits)
        if len(set(digits)) > 1:  # mixed sizes come in any order (37+5 and 5+37)
            digits = [digits[j] for j in rng.permutation(len(digits))]
        for d in digits:
            lo, hi = (1, 10) if d == 1 else (10 ** (d - 1), 10 ** d)
            nums.append(int(rng.integers(lo, hi)))
        return SumProblem(tuple(nums), level)

    def problems(self, n: int, split: str = "train", seed: int = 0,
                 levels: Optional[Iterable[int]] = None, unique: bool = True) -> List[SumProblem]:
        """Draw `n` problems of one split, levels in equal shares.

        Problem ``i`` has level ``levels[i % len(levels)]`` (default all
        levels). The same arguments give the same problems; the splits never
        share an expression.

        Raises
        ------
        ValueError
            On a bad `n`, `split` or level, or when a level has too few
            distinct expressions in the split for `unique` draws.
        """
        require_count(n)
        names = [s for s, _ in SPLITS]
        if split not in names:
            raise ValueError(f"split: must be one of {names}, got {split!r}")
        lvls = level_list(levels, self.n_levels)
        rng = np.random.default_rng([int(seed), 11, names.index(split)])
        seen = set()
        out: List[SumProblem] = []
        for i in range(int(n)):
            level = lvls[i % len(lvls)]
            for _attempt in range(20_000):
                p = self._random_problem(level, rng)
                if _split_of(p.expr) != split or (unique and p.expr in seen):
                    continue
                break
            else:
                raise ValueError(f"n: level {level} has too few distinct {split} problems for {n} unique draws")
            seen.add(p.expr)
            out.append(p)
        return out

    # ---- solutions --------------------------------------------------------

    def draw_checks(self, rng: np.random.Generator) -> int:
        """A number of checks from :attr:`check_probs`."""
        return int(rng.choice(len(self.check_probs), p=self.check_probs))

    @staticmethod
    def check_steps(problem: SumProblem, i: int) -> List[Tuple[int, int]]:
        """(number added, correct running total) of each step of check `i`."""
        order = check_order(len(problem.numbers), i)
        nums = [problem.numbers[j] for j in order]
        steps = []
        t = nums[0]
        for x in nums[1:]:
            t += x
            steps.append((x, t))
        return steps

    def render(self, problem: SumProblem, results: Sequence[int],
               totals: Optional[Sequence[Sequence[int]]] = None) -> SumSolution:
        """Write a solution from the guess and the check results.

        Parameters
        ----------
        problem : SumProblem
        results : sequence of int
            The guess, then the result of each check.
        totals : sequence of sequences of int, optional
            The running totals written in each check (default: the correct
            ones, with the last replaced by the check's result).
        """
        results = [int(r) for r in results]
        verdicts, answer = answer_rule(results)
        lines = [f"{problem.expr}={results[0]}?"]
        for i in range(1, len(results)):
            order = check_order(len(problem.numbers), i)
            nums = [problem.numbers[j] for j in order]
            if totals is None:
                tt = [t for _, t in self.check_steps(problem, i)]
                tt[-1] = results[i]
            else:
                tt = list(totals[i - 1])
            parts = [str(nums[0])] + [f"+{x}={t}" for x, t in zip(nums[1:], tt)]
            lines.append("check " + "".join(parts) + " " + verdicts[i - 1])
        lines.append(f"{ANSWER_PREFIX}\\boxed{{{answer}}}")
        return SumSolution(text="\n".join(lines), results=tuple(results), verdicts=tuple(verdicts),
                           answer=answer, correct=answer == problem.answer)

    def long_solution(self, problem: SumProblem, rng: np.random.Generator,
                      n_checks: Optional[int] = None) -> SumSolution:
        """A long-thought solution: guess (a slip with :attr:`guess_slip`),
        `n_checks` checks (default: drawn from the law), each step slipping
        with :attr:`step_slip`, and the answer by :func:`answer_rule`."""
        k = self.draw_checks(rng) if n_checks is None else int(n_checks)
        guess = near_miss(problem.answer, rng) if rng.random() < self.guess_slip else problem.answer
        results = [guess]
        totals = []
        for i in range(1, k + 1):
            tt = []
            err = 0
            for x, t in self.check_steps(problem, i):
                if rng.random() < self.step_slip:
                    err += near_miss(t + err, rng) - (t + err)
                tt.append(max(0, t + err))
            totals.append(tt)
            results.append(tt[-1])
        return self.render(problem, results, totals)

    def concise_solution(self, problem: SumProblem, rng: np.random.Generator) -> SumSolution:
        """A solution without slips or redundant checks: the right guess, boxed."""
        return self.render(problem, [problem.answer])

    def sft_examples(self, problems: Sequence[SumProblem], seed: int = 0,
                     style: str = "long") -> List[Tuple[str, str]]:
        """(prompt, response) pairs for supervised fine-tuning (`style`
        ``"long"`` or ``"concise"``)."""
        if style not in ("long", "concise"):
            raise ValueError(f"style: must be 'long' or 'concise', got {style!r}")
        rng = np.random.default_rng([int(seed), 12])
        make = self.long_solution if style == "long" else self.concise_solution
        return [(p.prompt, make(p, rng).text) for p in problems]

    # ---- grading ----------------------------------------------------------

    def grade(self, responses: Sequence[str], problems: Sequence[SumProblem],
              grader: Optional[Callable[[Sequence[str], Sequence[str]], Sequence[bool]]] = None) -> np.ndarray:
        """Correctness of responses (last ``\\boxed{}`` against the sum), bool array."""
        return grade_answers(responses, [p.answer for p in problems], grader)

    def describe(self) -> str:
        """A short table of the levels."""
        rows = ["level  numbers  digits"]
        for i, lv in enumerate(self.levels, 1):
            rows.append(f"{i:5d}  {lv.n_numbers:7d}  {'+'.join(str(d) for d in lv.digits)}")
        return "\n".join(rows)


_CHECK = re.compile(r"^check (\d+(?:\+\d+=\d+)+) (ok|no)$")
_GUESS = re.compile(r"[0-9+]+=(\d+)\?")


def parse_sum_solution(text: str) -> Dict[str, object]:
    """Structure of a response in the addition task's format.

    Returns ``guess`` (int or None), ``results`` (guess and check results),
    ``n_checks``, ``verdicts``, ``boxed`` (last boxed string or None),
    ``consistent`` (verdicts and boxed answer follow :func:`answer_rule` from
    the written results) and ``well_formed``.
    """
    guess, checks, boxed, well = parse_lines(text, _GUESS, _CHECK)
    verdicts = [cm.group(2) for cm in checks]
    results: List[int] = ([] if guess is None else [guess]) + [int(cm.group(1).rsplit("=", 1)[1]) for cm in checks]
    consistent = False
    if well and guess is not None:
        v, a = answer_rule(results)
        consistent = v == verdicts and str(a) == boxed
    return {"guess": guess, "results": results, "n_checks": len(verdicts), "verdicts": verdicts,
            "boxed": boxed, "consistent": consistent, "well_formed": well}


AdditionTask.parse = staticmethod(parse_sum_solution)  # type: ignore[attr-defined]
