"""A synthetic long-thought arithmetic task that shows length disharmony.

Problems are chains of additions and subtractions (``52-34+7``) at five
difficulty levels (2 to 6 numbers; every running total stays in 0..99, so
each step is a small addition or subtraction that a tiny character-level model
learns, while the one-jump result of a long chain is out of its reach). A "long-thought" reference solution first guesses the result
in one jump, then re-verifies it step by step a random number of times (0-3,
drawn from one fixed distribution whatever the difficulty) and boxes the
answer::

    Q:52-34+7
    52-34+7=35?
    check 52-34=18+7=25 no
    check 52-34=18+7=25 ok
    so the answer is \\boxed{25}

The guess is reliable on easy problems and often wrong on hard ones (the data
injects slips at a rate that grows with the level), so a check is redundant on
easy problems and worth its tokens on hard ones: the picture O1-Pruner is meant
to fix ("length disharmony"). Its character-level tokenizer is
:class:`o1pruner.tasks.tokenizer.CharTokenizer` (importable from here too).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from .common import ANSWER_PREFIX, parse_lines, check_law, grade_answers, level_list, near_miss, require_count

from .tokenizer import CharTokenizer

__all__ = [
    "PROMPT_TEMPLATE",
    "Level",
    "LEVELS",
    "CHECK_PROBS",
    "Problem",
    "Solution",
    "ArithmeticTask",
    "CharTokenizer",
    "format_prompt",
    "parse_solution",
]

#: The one prompt template, used both to sample from a model and to train it
#: (the public O1-Pruner code uses two different ones; method.md pitfalls).
PROMPT_TEMPLATE = "Q:{expr}\n"


#: Default largest running total: every step of a chain stays in
#: [0, max_value], so each step is a 1-2 digit addition or subtraction.
MAX_VALUE = 99


@dataclass(frozen=True)
class Level:
    """One difficulty level of the arithmetic task.

    Attributes
    ----------
    n_operands : int
        Numbers in the chain (>= 2).
    min_digits, max_digits : int
        Each operand has a uniformly drawn number of digits in this range.
    guess_error : float
        Probability that a long-thought solution's one-jump guess is wrong
        (a slip that a verification pass, when there is one, corrects).
    first_max_digits : int or None
        Upper digit count of the first operand when it differs from
        `max_digits` (the default levels start from a 1-2 digit number and
        add or subtract 1-digit numbers).
    """

    n_operands: int
    min_digits: int
    max_digits: int
    guess_error: float
    first_max_digits: Optional[int] = None

    def __post_init__(self) -> None:
        if self.n_operands < 2:
            raise ValueError(f"n_operands: must be >= 2, got {self.n_operands}")
        if not 1 <= self.min_digits <= self.max_digits <= 3:
            raise ValueError(
                f"min_digits, max_digits: need 1 <= min_digits <= max_digits <= 3, "
                f"got {self.min_digits}, {self.max_digits}"
            )
        if self.first_max_digits is not None and not self.min_digits <= self.first_max_digits <= 3:
            raise ValueError(
                f"first_max_digits: need min_digits <= first_max_digits <= 3, got {self.first_max_digits}"
            )
        if not 0.0 <= self.guess_error <= 1.0:
            raise ValueError(f"guess_error: must be in [0, 1], got {self.guess_error}")


#: Default levels, easiest first (index 0 is level 1).
LEVELS: Tuple[Level, ...] = (
    Level(2, 1, 1, 0.05, first_max_digits=2),
    Level(3, 1, 1, 0.15, first_max_digits=2),
    Level(4, 1, 1, 0.50, first_max_digits=2),
    Level(5, 1, 1, 0.70, first_max_digits=2),
    Level(6, 1, 1, 0.85, first_max_digits=2),
)

#: P(k) for k = 0, 1, 2, 3 verification passes in a long-thought solution; the
#: same at every level (the redundancy does not track difficulty). The
#: conditionals are P(k>=1) = 0.9, P(k>=2 | k>=1) = 0.83, P(k=3 | k>=2) = 0.67:
#: a model trained on them writes three passes at every level under greedy
#: decoding (measured in benchmarks/feasibility.md; with P(k>=2 | k>=1) = 0.65
#: greedy decoding wrote fewer passes on hard levels, and with P(k>=1) = 0.7 it
#: skipped checks where they were needed).
CHECK_PROBS: Tuple[float, ...] = (0.10, 0.15, 0.25, 0.50)


@dataclass(frozen=True)
class Problem:
    """One arithmetic problem.

    Attributes
    ----------
    operands : tuple of int
        The numbers, left to right.
    ops : tuple of str
        The operators ``"+"``/``"-"`` between them (``len(operands) - 1``).
    level : int
        Difficulty level, 1-based.
    """

    operands: Tuple[int, ...]
    ops: Tuple[str, ...]
    level: int

    @property
    def expr(self) -> str:
        """The expression as written, e.g. ``"52-34+7"``."""
        parts = [str(self.operands[0])]
        for op, x in zip(self.ops, self.operands[1:]):
            parts.append(op + str(x))
        return "".join(parts)

    @property
    def totals(self) -> Tuple[int, ...]:
        """Running totals after each operator (the last one is the answer)."""
        out = []
        t = self.operands[0]
        for op, x in zip(self.ops, self.operands[1:]):
            t = t + x if op == "+" else t - x
            out.append(t)
        return tuple(out)

    @property
    def answer(self) -> int:
        """The ground-truth result."""
        return self.totals[-1]

    @property
    def prompt(self) -> str:
        """The prompt, :data:`PROMPT_TEMPLATE` filled with this expression."""
        return format_prompt(self)

    def chain(self) -> str:
        """The step-by-step computation, e.g. ``"52-34=18+7=25"``."""
        parts = [str(self.operands[0])]
        for op, x, t in zip(self.ops, self.operands[1:], self.totals):
            parts.append(f"{op}{x}={t}")
        return "".join(parts)

    def to_dict(self) -> Dict[str, object]:
        """A JSON-friendly record (prompt, answer as text, level, expr)."""
        return {"prompt": self.prompt, "answer": str(self.answer), "level": self.level, "expr": self.expr}


@dataclass(frozen=True)
class Solution:
    """A generated reference solution and what it contains.

    Attributes
    ----------
    text : str
        The response (what follows the prompt), without special tokens.
    guess : int
        The one-jump first attempt.
    n_checks : int
        Verification passes written (0-3).
    answer : int
        The boxed final answer.
    guess_correct : bool
        Whether the guess equals the problem's answer.
    correct : bool
        Whether `answer` equals the problem's answer. False exactly when the
        guess was wrong and no verification pass followed it (an uncorrected
        slip).
    """

    text: str
    guess: int
    n_checks: int
    answer: int
    guess_correct: bool
    correct: bool


def format_prompt(problem: Union[Problem, str]) -> str:
    """Fill :data:`PROMPT_TEMPLATE` with a problem (or an expression string)."""
    expr = problem.expr if isinstance(problem, Problem) else str(problem)
    return PROMPT_TEMPLATE.format(expr=expr)


def _split_of(expr: str, heldout_fraction: float) -> str:
    """Deterministic split of an expression by a stable hash: 'heldout' or 'train'.

    Hashing the expression (not drawing with a seed) makes the two splits
    disjoint whatever seeds or counts are asked for.
    """
    h = int.from_bytes(hashlib.blake2b(expr.encode("ascii"), digest_size=8).digest(), "little")
    return "heldout" if h / 2.0**64 < heldout_fraction else "train"


class ArithmeticTask:
    """Seeded generator of problems and long-thought / concise solutions.

    Parameters
    ----------
    levels : sequence of Level, optional
        Difficulty levels, easiest first (default :data:`LEVELS`).
    check_probs : sequence of float, optional
        P(k) of k = 0..len-1 verification passes in a long-thought solution,
        the same at every level (default :data:`CHECK_PROBS`). Must sum to 1.
    max_value : int, default 99
        Largest running total (and operand); every step of a chain stays in
        ``[0, max_value]``.
    heldout_fraction : float, default 0.2
        Share of all expressions that belong to the held-out split. The split
        of an expression is a hash of its text, so train and held-out problems
        never overlap, whatever the seeds.

    Examples
    --------
    >>> task = ArithmeticTask()
    >>> probs = task.problems(4, split="train", seed=0)
    >>> [p.level for p in probs]
    [1, 2, 3, 4]
    >>> sol = task.long_solution(probs[0], np.random.default_rng(0))
    >>> sol.text.endswith("\\\\boxed{%d}" % sol.answer)
    True
    """

    name = "arithmetic"
    #: The split names :meth:`problems` accepts (evaluation: ``"heldout"``).
    splits = ("train", "heldout")

    def __init__(
        self,
        levels: Optional[Sequence[Level]] = None,
        check_probs: Optional[Sequence[float]] = None,
        heldout_fraction: float = 0.2,
        max_value: int = MAX_VALUE,
    ) -> None:
        self.levels: Tuple[Level, ...] = tuple(LEVELS if levels is None else levels)
        if not self.levels:
            raise ValueError("levels: need at least one level")
        for i, lv in enumerate(self.levels):
            if not isinstance(lv, Level):
                raise TypeError(f"levels: item {i} is {type(lv).__name__}, expected Level")
        self.check_probs: Tuple[float, ...] = check_law(CHECK_PROBS if check_probs is None else check_probs)
        if not 0.0 < heldout_fraction < 1.0:
            raise ValueError(f"heldout_fraction: must be in (0, 1), got {heldout_fraction}")
        self.heldout_fraction = float(heldout_fraction)
        if isinstance(max_value, bool) or not isinstance(max_value, (int, np.integer)) or max_value < 9:
            raise ValueError(f"max_value: must be an int >= 9, got {max_value!r}")
        self.max_value = int(max_value)
        for i, lv in enumerate(self.levels):
            if 10 ** (lv.min_digits - 1) > self.max_value:
                raise ValueError(f"levels: level {i + 1} has operands of {lv.min_digits} digits > max_value {self.max_value}")

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    # ---- problems ---------------------------------------------------------

    def split_of(self, problem: Union[Problem, str]) -> str:
        """``"train"`` or ``"heldout"``: the split an expression belongs to."""
        expr = problem.expr if isinstance(problem, Problem) else str(problem)
        return _split_of(expr, self.heldout_fraction)

    def _random_problem(self, level: int, rng: np.random.Generator) -> Problem:
        lv = self.levels[level - 1]

        def number(first: bool = False) -> int:
            top = lv.first_max_digits if (first and lv.first_max_digits is not None) else lv.max_digits
            nd = int(rng.integers(lv.min_digits, top + 1))
            lo = 1 if nd == 1 else 10 ** (nd - 1)
            return int(rng.integers(lo, min(10**nd, self.max_value + 1)))

        while True:
            operands = [number(first=True)]
            ops: List[str] = []
            total = operands[0]
            ok = True
            for _ in range(lv.n_operands - 1):
                for _attempt in range(20):
                    x = number()
                    can_add, can_sub = total + x <= self.max_value, total - x >= 0
                    if can_add or can_sub:
                        break
                else:
                    ok = False
                    break
                op = "+" if (can_add and (not can_sub or rng.random() < 0.5)) else "-"
                total = total + x if op == "+" else total - x
                operands.append(x)
                ops.append(op)
            if ok:
                return Problem(tuple(operands), tuple(ops), level)

    def problems(
        self,
        n: int,
        split: str = "train",
        seed: int = 0,
        levels: Optional[Iterable[int]] = None,
        unique: bool = True,
    ) -> List[Problem]:
        """Draw `n` problems of one split, levels in equal shares.

        Parameters
        ----------
        n : int
            Number of problems (>= 0).
        split : {"train", "heldout"}
            Which split to draw from.
        seed : int
            Seed; the same arguments give the same problems.
        levels : iterable of int, optional
            1-based levels to use (default all). Problem ``i`` has level
            ``levels[i % len(levels)]``.
        unique : bool, default True
            No expression appears twice in the result.

        Returns
        -------
        list of Problem

        Raises
        ------
        ValueError
            On a bad `n`, `split` or level, or when a level has too few
            distinct expressions for `unique` draws.
        """
        require_count(n)
        if split not in ("train", "heldout"):
            raise ValueError(f"split: must be 'train' or 'heldout', got {split!r}")
        lvls = level_list(levels, self.n_levels)
        # One stream per (seed, split) so the two splits' draws are independent.
        rng = np.random.default_rng([int(seed), 0 if split == "train" else 1])
        seen = set()
        out: List[Problem] = []
        for i in range(int(n)):
            level = lvls[i % len(lvls)]
            for _attempt in range(10_000):
                p = self._random_problem(level, rng)
                e = p.expr
                if self.split_of(e) != split or (unique and e in seen):
                    continue
                break
            else:
                raise ValueError(f"n: level {level} has too few distinct {split} problems for {n} unique draws")
            seen.add(e)
            out.append(p)
        return out

    # ---- solutions --------------------------------------------------------

    def draw_checks(self, rng: np.random.Generator) -> int:
        """Number of verification passes, from :attr:`check_probs`."""
        return int(rng.choice(len(self.check_probs), p=self.check_probs))

    def draw_guess(self, problem: Problem, rng: np.random.Generator) -> int:
        """The one-jump first attempt: right, or a slip with the level's rate."""
        if rng.random() < self.levels[problem.level - 1].guess_error:
            return near_miss(problem.answer, rng, self.max_value)
        return problem.answer

    @staticmethod
    def render(problem: Problem, guess: int, n_checks: int) -> Solution:
        """Write the solution text for a given guess and number of passes.

        Each pass recomputes the chain and compares its result with the
        current answer (the guess, or the last pass): ``ok``, or ``no`` and the
        pass's result becomes the answer. The last number is boxed.
        """
        if n_checks < 0:
            raise ValueError(f"n_checks: must be >= 0, got {n_checks}")
        lines = [f"{problem.expr}={guess}?"]
        current = guess
        chain = problem.chain()
        for _ in range(n_checks):
            verdict = "ok" if current == problem.answer else "no"
            lines.append(f"check {chain} {verdict}")
            current = problem.answer
        lines.append(f"{ANSWER_PREFIX}\\boxed{{{current}}}")
        return Solution(
            text="\n".join(lines),
            guess=int(guess),
            n_checks=int(n_checks),
            answer=int(current),
            guess_correct=guess == problem.answer,
            correct=current == problem.answer,
        )

    def long_solution(self, problem: Problem, rng: np.random.Generator) -> Solution:
        """A long-thought solution: guess, 0-3 passes (fixed law), boxed answer.

        Wrong (an uncorrected slip) exactly when the guess is wrong and no
        pass follows.
        """
        guess = self.draw_guess(problem, rng)
        k = self.draw_checks(rng)
        return self.render(problem, guess, k)

    def concise_solution(self, problem: Problem, rng: np.random.Generator) -> Solution:
        """A solution without redundant checks, always correct.

        The guess is drawn as in :meth:`long_solution`; a right guess is boxed
        at once, a wrong one gets exactly the one pass that corrects it.
        """
        guess = self.draw_guess(problem, rng)
        return self.render(problem, guess, 0 if guess == problem.answer else 1)

    def sft_examples(
        self,
        problems: Sequence[Problem],
        seed: int = 0,
        style: str = "long",
    ) -> List[Tuple[str, str]]:
        """(prompt, response) pairs for supervised fine-tuning.

        Parameters
        ----------
        problems : sequence of Problem
        seed : int
            Seed of the guesses and pass counts.
        style : {"long", "concise"}
        """
        if style not in ("long", "concise"):
            raise ValueError(f"style: must be 'long' or 'concise', got {style!r}")
        rng = np.random.default_rng([int(seed), 2])
        make = self.long_solution if style == "long" else self.concise_solution
        return [(p.prompt, make(p, rng).text) for p in problems]

    # ---- grading ----------------------------------------------------------

    def grade(
        self,
        responses: Sequence[str],
        problems: Sequence[Problem],
        grader: Optional[Callable[[Sequence[str], Sequence[str]], Sequence[bool]]] = None,
    ) -> np.ndarray:
        """Correctness of responses, as a bool array.

        Parameters
        ----------
        responses : sequence of str
            Generated responses (text after the prompt).
        problems : sequence of Problem
            The problems, same length.
        grader : callable, optional
            ``grader(responses, golds) -> sequence of bool``, with golds the
            answers as strings. Default: the package grader,
            :func:`o1pruner.grading.grade_responses` (last ``\\boxed{}``).
        """
        return grade_answers(responses, [p.answer for p in problems], grader)

    def describe(self) -> str:
        """A short table of the levels."""
        rows = ["level  operands  digits  guess_error"]
        for i, lv in enumerate(self.levels, 1):
            rows.append(f"{i:5d}  {lv.n_operands:8d}  {lv.min_digits}-{lv.max_digits}     {lv.guess_error:11.2f}")
        return "\n".join(rows)


_CHECK_LINE = re.compile(r"^check (\S+) (ok|no)$")
_GUESS_LINE = re.compile(r"[0-9+\-]+=(\d+)\?")


def parse_solution(text: str) -> Dict[str, object]:
    """Structure of a response written in this task's format.

    Returns a dict with ``guess`` (int or None), ``n_checks`` (passes
    written), ``verdicts`` (list of "ok"/"no"), ``boxed`` (the last boxed
    string or None) and ``well_formed`` (every line follows the format).
    Useful to count redundant checks in a model's output.
    """
    guess, checks, boxed, well = parse_lines(text, _GUESS_LINE, _CHECK_LINE)
    verdicts = [cm.group(2) for cm in checks]
    return {"guess": guess, "n_checks": len(verdicts), "verdicts": verdicts, "boxed": boxed, "well_formed": well}


ArithmeticTask.parse = staticmethod(parse_solution)  # type: ignore[attr-defined]
