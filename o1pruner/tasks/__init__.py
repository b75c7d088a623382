"""Built-in tasks and their character tokenizer.

- :class:`AdditionTask` (``"addition"``, the default): sums of 2 to 4
  numbers of 1 to 3 digits, solved by a one-jump guess and checks that re-add
  the numbers in other orders; three hashed splits (train / validation /
  test). Thinking length matters on it: the shipped reference's greedy
  accuracy falls with the level, and checks raise it on the hard levels only.
- :class:`ArithmeticTask` (``"arithmetic"``): the first built-in task, kept
  for its tests and notebooks (checks recompute the same sum).

:func:`get_task` gives a task by name; every task has ``name``, ``splits``,
``n_levels``, ``problems(n, split, seed, levels)``, ``grade(responses,
problems)`` and ``parse(text)`` (the structure of a written solution, with
``n_checks``).
"""

from typing import Any, Optional

from .addition import (
    SPLITS,
    SUM_CHECK_PROBS,
    SUM_LEVELS,
    AdditionTask,
    SumLevel,
    SumProblem,
    SumSolution,
    parse_sum_solution,
)
from .arithmetic import (
    CHECK_PROBS,
    LEVELS,
    PROMPT_TEMPLATE,
    ArithmeticTask,
    CharTokenizer,
    Level,
    Problem,
    Solution,
    format_prompt,
    parse_solution,
)

#: Names accepted by :func:`get_task`, the default first.
TASK_NAMES = ("addition", "arithmetic")


def get_task(name: str = "addition", **kwargs: Any) -> Any:
    """The built-in task called `name` (``"addition"`` or ``"arithmetic"``),
    constructed with `kwargs` (the task class's parameters).

    Raises
    ------
    ValueError
        On an unknown name.
    """
    if name == "addition":
        return AdditionTask(**kwargs)
    if name == "arithmetic":
        return ArithmeticTask(**kwargs)
    raise ValueError(f"task: must be one of {list(TASK_NAMES)}, got {name!r}")


def default_eval_split(task: Optional[Any] = None) -> str:
    """The split results are reported on: ``"test"`` for the addition task,
    ``"heldout"`` for the arithmetic task."""
    splits = getattr(task if task is not None else AdditionTask, "splits")
    return "test" if "test" in splits else "heldout"


__all__ = [
    "TASK_NAMES",
    "get_task",
    "default_eval_split",
    "PROMPT_TEMPLATE",
    "AdditionTask",
    "SumLevel",
    "SumProblem",
    "SumSolution",
    "SUM_LEVELS",
    "SUM_CHECK_PROBS",
    "SPLITS",
    "parse_sum_solution",
    "LEVELS",
    "CHECK_PROBS",
    "Level",
    "Problem",
    "Solution",
    "ArithmeticTask",
    "CharTokenizer",
    "format_prompt",
    "parse_solution",
]
