"""Built-in tasks: the synthetic long-thought arithmetic task and its tokenizer."""

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

__all__ = [
    "PROMPT_TEMPLATE",
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
