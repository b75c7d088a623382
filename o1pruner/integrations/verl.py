"""The length-harmonizing reward as a verl custom reward function.

verl's reward managers call ``compute_score(data_source=..., solution_str=...,
ground_truth=..., extra_info=...)`` once per response (the "naive" manager)
and merge the keys of ``custom_reward_function.reward_kwargs`` from the
config into the call; a returned dict must hold ``"score"`` (the reward) and
its other keys are logged per sample, so every call returns the same keys.
The "batch" manager calls ``compute_score(data_sources=, solution_strs=,
ground_truths=, extra_infos=)`` instead: :func:`compute_score_batch`.
With a reward model router, verl's reward loop also passes
``reward_router_address`` and ``reward_model_tokenizer`` (accepted, not
used). Any other keyword argument is an error naming it (a misspelt
``reward_kwargs`` key such as ``lamda`` must not score silently with the
default lambda).

Reference statistics come per problem in ``extra_info`` (a dataset column of
dicts): ``{"ref_mean_length": Lbar_ref, "ref_accuracy": Abar_ref}``.
verl hands the response over as text, so L(y) is counted with the policy's
tokenizer (``reward_kwargs: {tokenizer: <model path>}``), unless
``extra_info`` carries the length (``response_length`` or
``valid_response_length``, which some reward managers add).

verl loads ``custom_reward_function.path`` by file
(``importlib.util.spec_from_file_location`` + ``exec_module``, under a name
of its own, outside the package), so this module uses absolute imports
only. Config (verl's Hydra overrides)::

    custom_reward_function.path=$(python -c "import o1pruner.integrations.verl as m; print(m.__file__)")
    custom_reward_function.name=compute_score
    +custom_reward_function.reward_kwargs.tokenizer=Qwen/QwQ-32B-Preview
    +custom_reward_function.reward_kwargs.lam=2.0

verl releases after 0.7.0 also take ``custom_reward_function.path=pkg://o1pruner.integrations.verl``
(imported as a module).

The default reward is clipped to [-2, 4] (the public code's weight clip)
and pays the bonus for being short only to correct responses
(``length_bonus="correct"``): see :func:`compute_score` for why, and
``clip: null`` / ``length_bonus: all`` for the paper's R as is.

This module imports neither torch nor verl (transformers only to load a
tokenizer given by name).
"""

from __future__ import annotations

import difflib
import functools
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

# absolute imports: verl executes this file outside the package (see above)
from o1pruner.data.tokenize import count_tokens
from o1pruner.integrations import (DEFAULT_CLIP, REF_ACCURACY, REF_LENGTH, grade_correct, on_policy_reward, ref_stat,
                                   resolve_grader, reward_options)

__all__ = ["compute_score", "compute_score_batch"]

_LENGTH_KEYS = ("response_length", "valid_response_length")

#: Keyword arguments verl itself may pass besides the four of the contract
#: (its reward loop with a reward model router); accepted and not used.
VERL_PASSES = ("reward_router_address", "reward_model_tokenizer")
#: The options of the reward (``custom_reward_function.reward_kwargs``).
OPTIONS = ("lam", "tokenizer", "grader", "clip", "length_bonus")


def _check_kwargs(kwargs: Mapping[str, Any], where: str) -> None:
    unknown = sorted(k for k in kwargs if k not in VERL_PASSES)
    if not unknown:
        return
    k = unknown[0]
    close = difflib.get_close_matches(k, OPTIONS, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    more = f" and {len(unknown) - 1} more ({', '.join(unknown[1:])})" if len(unknown) > 1 else ""
    raise TypeError(f"{where}: unknown keyword argument {k!r}{hint}{more}; the options are "
                    f"{', '.join(OPTIONS)} (custom_reward_function.reward_kwargs)")


@functools.lru_cache(maxsize=4)
def _load_tokenizer(name: str):
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:
        raise ImportError("tokenizer: loading a tokenizer by name needs transformers "
                          "(pip install 'o1pruner[hf]')") from exc
    return AutoTokenizer.from_pretrained(name)


def _count(tokenizer, text: str) -> int:
    """Tokens of `text` as :func:`o1pruner.presample` counts them (so L and
    Lbar_ref are in the same units); an empty response counts as 1."""
    if isinstance(tokenizer, str):
        tokenizer = _load_tokenizer(tokenizer)
    if not text:
        return 1
    return int(count_tokens(tokenizer, [text], where="solution_str")[0])


def _length(solution: str, info: Mapping[str, Any], tokenizer, i: int) -> float:
    for k in _LENGTH_KEYS:
        if info.get(k) is not None:
            return max(ref_stat(info[k], f"extra_info['{k}']", i), 1.0)
    if tokenizer is None:
        raise ValueError("tokenizer: needed to count the response's tokens (verl passes text); set "
                         "custom_reward_function.reward_kwargs.tokenizer to the policy's model path, or put "
                         "'response_length' in extra_info")
    return float(_count(tokenizer, solution))


def _ref(info: Optional[Mapping[str, Any]], i: int):
    if not isinstance(info, Mapping):
        raise ValueError(f"extra_info: expected a dict with '{REF_LENGTH}' and '{REF_ACCURACY}' "
                         f"(sample {i}), got {type(info).__name__}")
    for k in (REF_LENGTH, REF_ACCURACY):
        if info.get(k) is None:
            raise ValueError(f"extra_info['{k}']: missing for sample {i}; add the per-problem reference "
                             f"statistics to the dataset's extra_info (o1pruner.integrations.reference_table)")
    lbar = ref_stat(info[REF_LENGTH], f"extra_info['{REF_LENGTH}']", i)
    if lbar <= 0:
        raise ValueError(f"extra_info['{REF_LENGTH}']: must be > 0, got {lbar} (sample {i})")
    return lbar, ref_stat(info[REF_ACCURACY], f"extra_info['{REF_ACCURACY}']", i)


def compute_score_batch(data_sources: Sequence[Any], solution_strs: Sequence[str], ground_truths: Sequence[Any],
                        extra_infos: Sequence[Optional[Mapping[str, Any]]], *, lam: float = 2.0,
                        tokenizer: Any = None, grader: Optional[Callable] = None,
                        clip: Optional[Tuple[float, float]] = DEFAULT_CLIP, length_bonus: str = "correct",
                        **kwargs: Any) -> List[Dict[str, float]]:
    """O1-Pruner's reward for a batch of responses (verl's "batch" reward
    manager contract). Returns one score dict per response (see
    :func:`compute_score`, same options and errors); grading and the reward
    run once for the batch."""
    _check_kwargs(kwargs, "compute_score_batch")
    lam, clip, length_bonus = reward_options(lam, clip, length_bonus)
    n = len(solution_strs)
    for name, v in (("data_sources", data_sources), ("ground_truths", ground_truths), ("extra_infos", extra_infos)):
        if len(v) != n:
            raise ValueError(f"{name}: has {len(v)} entries for {n} solution_strs")
    for i, s in enumerate(solution_strs):
        if not isinstance(s, str):
            raise TypeError(f"solution_str: expected str for sample {i}, got {type(s).__name__}")
    refs = [_ref(info, i) for i, info in enumerate(extra_infos)]
    lbar = np.array([r[0] for r in refs])
    abar = np.array([r[1] for r in refs])
    lengths = np.array([_length(s, info, tokenizer, i) for i, (s, info) in enumerate(zip(solution_strs, extra_infos))])
    golds = [g[0] if isinstance(g, (list, tuple, np.ndarray)) and len(g) == 1 else g for g in ground_truths]
    correct = grade_correct(resolve_grader(grader), solution_strs, golds)
    r = on_policy_reward(lengths, correct, lbar, abar, lam=lam, clip=clip, length_bonus=length_bonus)
    return [{"score": float(r[i]), "acc": float(correct[i]), "length": float(lengths[i]),
             "ref_mean_length": float(lbar[i]), "ref_accuracy": float(abar[i])} for i in range(n)]


def compute_score(data_source: Any, solution_str: str, ground_truth: Any,
                  extra_info: Optional[Mapping[str, Any]] = None, *, lam: float = 2.0,
                  tokenizer: Any = None, grader: Optional[Callable] = None,
                  clip: Optional[Tuple[float, float]] = DEFAULT_CLIP, length_bonus: str = "correct",
                  **kwargs: Any) -> Dict[str, float]:
    """O1-Pruner's reward for one response, with verl's custom reward
    function signature.

    Parameters
    ----------
    data_source : any
        The dataset name (not used: the same reward for every source).
    solution_str : str
        The decoded response.
    ground_truth : str (or a one-element list)
        The gold answer, graded against with the package grader.
    extra_info : dict
        Must hold ``ref_mean_length`` (Lbar_ref, in the policy tokenizer's
        tokens) and ``ref_accuracy`` (Abar_ref) of the problem; may hold
        ``response_length``. Other keys (verl adds ``num_turns``) are ignored.
    lam : float, default 2.0
        lambda (from ``reward_kwargs``).
    tokenizer : tokenizer, model name/path, or callable, optional
        Counts the response's tokens (loaded once per process when a name).
    grader : callable, optional
        ``grader(responses, golds) -> bools``; default
        :func:`o1pruner.grading.grade_responses`.
    clip : (low, high) or None, default (-2.0, 4.0)
        The public code's clip of the reward (``w <= -2 -> -2``,
        ``w > 4 -> 4``); None (``null`` in the config) for no clip.
    length_bonus : {"correct", "all"}, default "correct"
        "correct": a response that is not fully correct earns no bonus for
        being shorter than Lbar_ref (its length counts as Lbar_ref; being
        longer still costs); "all": the paper's R for every response.
    **kwargs
        Only what verl itself passes besides the contract
        (``reward_router_address``, ``reward_model_tokenizer``; not used).

    Returns
    -------
    dict
        ``{"score": R, "acc": A, "length": L, "ref_mean_length": Lbar_ref,
        "ref_accuracy": Abar_ref}``; with ``clip=None, length_bonus="all"``
        ``score`` is ``Lbar_ref / L - 1 + lam * (A - Abar_ref)`` (method.md
        step 2); ``acc`` is what verl's validation metrics read; ``length``
        is the response's own length.

    Raises
    ------
    TypeError
        An unknown keyword argument (e.g. ``lamda=5.0``), named with the
        closest option; a `clip` that is not a pair; a non-str response.
    ValueError
        Missing reference statistics in extra_info (named), no way to count
        tokens, bad `lam`, `clip` or `length_bonus`.

    Notes
    -----
    The paper's R weighs samples of the reference (off-policy). On-policy,
    the policy can collapse to what the reference never wrote: with
    Lbar_ref = 40, Abar_ref = 0.5 and lam = 2, an empty or one-token *wrong*
    answer has R = 40 / 1 - 1 + 2 (0 - 0.5) = 38.0, a correct 31-token answer
    1.29. Clipped to [-2, 4] the wrong one still leads (4.0); with
    ``length_bonus="correct"`` (the default) it scores -1.0, and every
    correct response of a problem outscores every wrong one when lam >= 1.

    Examples
    --------
    >>> from o1pruner.integrations.verl import compute_score
    >>> compute_score("math", "so \\boxed{2}", "2", {"ref_mean_length": 100, "ref_accuracy": 0.5,
    ...               "response_length": 50}, grader=lambda t, g: [True])["score"]
    2.0
    """
    _check_kwargs(kwargs, "compute_score")
    return compute_score_batch([data_source], [solution_str], [ground_truth], [extra_info], lam=lam,
                               tokenizer=tokenizer, grader=grader, clip=clip, length_bonus=length_bonus)[0]
