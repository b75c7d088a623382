"""The length-harmonizing reward as a reward function for TRL's GRPOTrainer.

TRL calls every reward function as ``f(prompts=..., completions=...,
completion_ids=..., **columns)`` with one entry per generated completion,
where ``columns`` are the dataset's other columns repeated per completion
(plus a few trainer objects such as ``trainer_state`` and ``log_metric``). The
function below reads the ground truth and the reference statistics from those
columns, counts L(y) from ``completion_ids`` and returns
``R = Lbar_ref / L - 1 + lam * (A - Abar_ref)`` (method.md step 2) computed by
the C core. GRPO then normalises rewards within each prompt's group itself.

This module imports neither torch nor TRL.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import DEFAULT_CLIP, REF_ACCURACY, REF_LENGTH, grade_correct, on_policy_reward, ref_stat, resolve_grader, reward_options

__all__ = ["length_harmonizing_reward"]


def _text(completion: Any, i: int) -> str:
    """A completion is a str, or (conversational datasets) a list of
    messages whose last one is the assistant's."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, (list, tuple)) and completion and isinstance(completion[-1], dict):
        content = completion[-1].get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):  # multimodal-style content parts
            return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    raise TypeError(f"completions: entry {i} is neither a str nor a list of messages ({type(completion).__name__})")


def length_harmonizing_reward(
    lam: float = 2.0,
    *,
    answer_column: str = "ground_truth_answer",
    ref_length_column: str = REF_LENGTH,
    ref_accuracy_column: str = REF_ACCURACY,
    grader: Optional[Callable] = None,
    eos_token_id: Union[None, int, Sequence[int]] = None,
    clip: Optional[Tuple[float, float]] = DEFAULT_CLIP,
    length_bonus: str = "correct",
    log_metrics: bool = True,
    name: str = "length_harmonizing_reward",
) -> Callable[..., List[float]]:
    """A TRL ``GRPOTrainer`` reward function computing O1-Pruner's reward.

    Parameters
    ----------
    lam : float, default 2.0
        lambda, the weight of the accuracy term (2 for Marco-o1 in the paper).
    answer_column : str, default "ground_truth_answer"
        Dataset column with each problem's gold answer.
    ref_length_column, ref_accuracy_column : str
        Dataset columns with Lbar_ref(x) (mean token length of the initial
        model's samples, in the policy tokenizer's tokens) and Abar_ref(x)
        (their accuracy); see :func:`o1pruner.integrations.with_reference_stats`.
    grader : callable, optional
        ``grader(completions, golds) -> bools``; default
        :func:`o1pruner.grading.grade_responses` (last ``\\boxed{}``).
    eos_token_id : int or sequence of int, optional
        TRL's ``completion_ids`` end with the eos token when generation
        stopped; pass the tokenizer's eos id(s) so that it is not counted,
        as lengths counted from text (:func:`o1pruner.presample`) do not.
    clip : (low, high) or None, default (-2.0, 4.0)
        Clip the reward like the public code's weights (``w <= -2 -> -2``,
        ``w > 4 -> 4``); None for the unclipped R.
    length_bonus : {"correct", "all"}, default "correct"
        "correct": a response that is not fully correct earns no bonus for
        being shorter than Lbar_ref (its length counts as Lbar_ref), so an
        empty wrong answer cannot outscore a correct one (see Notes); "all":
        the paper's R for every response (with ``clip=None``: R exactly).
    log_metrics : bool, default True
        When TRL passes ``log_metric`` (recent versions), log the batch's
        mean accuracy, mean length and mean L/Lbar_ref under ``o1pruner/``.
    name : str
        The function's ``__name__`` (TRL logs rewards under it).

    Returns
    -------
    callable
        ``reward(prompts, completions, completion_ids=None, **columns) ->
        list[float]``.

    Raises
    ------
    TypeError
        An unknown keyword argument (``lamda=5.0``), a `clip` that is not a
        pair.
    ValueError
        A negative or non-finite `lam`, ``low >= high``, an unknown
        `length_bonus`.

    Raises (when called)
    --------------------
    ValueError
        A missing column (named), lists of different lengths, missing
        ``completion_ids``, non-finite statistics or a non-positive
        ``ref_mean_length``.

    Notes
    -----
    An empty completion (only the eos token) counts as length 1, so its
    reward stays finite. The paper's R is an off-policy weight on samples of
    the reference; used on-policy it pays for collapse: with Lbar_ref = 40,
    Abar_ref = 0.5, lam = 2, an empty or one-token *wrong* answer gets
    R = 40 - 1 + 2 (0 - 0.5) = 38.0 against 1.29 for a correct 31-token
    answer. The clip alone makes that 4.0 against 1.29 (still preferred);
    with the default ``length_bonus="correct"`` it is -1.0 against 1.29.

    Examples
    --------
    >>> from o1pruner.integrations.trl import length_harmonizing_reward
    >>> f = length_harmonizing_reward(lam=2.0, grader=lambda t, g: [a.endswith(b) for a, b in zip(t, g)])
    >>> f(prompts=["1+1?", "1+1?"], completions=["so 2", "so 3"], completion_ids=[[5] * 50, [5] * 200],
    ...   ground_truth_answer=["2", "2"], ref_mean_length=[100.0, 100.0], ref_accuracy=[0.5, 0.5])
    [2.0, -1.5]
    """
    lam, clip, length_bonus = reward_options(lam, clip, length_bonus)
    grade = resolve_grader(grader)
    eos = set() if eos_token_id is None else ({int(eos_token_id)} if np.ndim(eos_token_id) == 0
                                               else {int(e) for e in eos_token_id})

    def reward(prompts=None, completions=None, completion_ids=None, **columns) -> List[float]:
        if completions is None:
            raise ValueError("completions: required")
        n = len(completions)
        if completion_ids is None:
            raise ValueError("completion_ids: required to count token lengths (TRL >= 0.18 passes it)")
        need = {"completion_ids": completion_ids}
        for col in (answer_column, ref_length_column, ref_accuracy_column):
            if col not in columns:
                hint = (" (add per-problem reference statistics with o1pruner.integrations.with_reference_stats)"
                        if col in (ref_length_column, ref_accuracy_column) else "")
                raise ValueError(f"{col}: dataset column missing; the reward needs it{hint}")
            need[col] = columns[col]
        if prompts is not None:
            need["prompts"] = prompts
        for k, v in need.items():
            if len(v) != n:
                raise ValueError(f"{k}: has {len(v)} entries for {n} completions")
        texts = [_text(c, i) for i, c in enumerate(completions)]
        lengths = np.empty(n, dtype=np.float64)
        for i, ids in enumerate(completion_ids):
            ids = list(ids)
            if eos and ids and int(ids[-1]) in eos:
                ids = ids[:-1]
            lengths[i] = max(len(ids), 1)
        lbar = np.array([ref_stat(v, ref_length_column, i) for i, v in enumerate(columns[ref_length_column])])
        abar = np.array([ref_stat(v, ref_accuracy_column, i) for i, v in enumerate(columns[ref_accuracy_column])])
        if np.any(lbar <= 0):
            i = int(np.flatnonzero(lbar <= 0)[0])
            raise ValueError(f"{ref_length_column}: must be > 0, got {lbar[i]} for sample {i}")
        correct = grade_correct(grade, texts, columns[answer_column])
        r = on_policy_reward(lengths, correct, lbar, abar, lam=lam, clip=clip, length_bonus=length_bonus)
        log = columns.get("log_metric")
        if log_metrics and callable(log) and n:
            log("o1pruner/accuracy", float(correct.mean()))
            log("o1pruner/length", float(lengths.mean()))
            log("o1pruner/length_ratio", float(np.mean(lengths / lbar)))
        return r.tolist()

    reward.__name__ = name
    reward.__qualname__ = name
    return reward
