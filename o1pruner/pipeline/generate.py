"""Generators and graders as the pipeline calls them: what a generator
returned, as (text, token ids); the package's default graders; a grader's
answer checked to be one boolean per text. Pre-sampling and evaluation share
these (one generate -> grade path)."""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..data.tokenize import count_tokens

__all__ = ["outputs_of", "accepts_kwarg", "as_generate", "default_grader", "default_answer_grader",
           "default_extract", "grade_texts", "batch_seed", "lengths_and_correct"]


def outputs_of(result: Any, n: int) -> List[Tuple[str, Optional[List[int]]]]:
    """(text, token_ids or None) for each of the n prompts, from whatever a
    generator returned: a list of str, of dicts/objects with ``text`` (and
    ``token_ids``), of vLLM ``RequestOutput`` (first output), or one batch
    object with ``texts`` (and ``token_ids``)."""
    if hasattr(result, "texts") and not isinstance(result, (list, tuple)):
        texts = list(result.texts)
        ids = getattr(result, "token_ids", None)
        ids = [None] * len(texts) if ids is None else [None if x is None else np.asarray(x).tolist() for x in ids]
        items = list(zip(texts, ids))
    elif isinstance(result, (list, tuple)):
        items = []
        for i, r in enumerate(result):
            if isinstance(r, str):
                items.append((r, None))
                continue
            if hasattr(r, "outputs") and not isinstance(r, Mapping):  # vLLM RequestOutput
                r = r.outputs[0]
            if isinstance(r, Mapping):
                text, ids = r.get("text"), r.get("token_ids")
            else:
                text, ids = getattr(r, "text", None), getattr(r, "token_ids", None)
            if not isinstance(text, str):
                raise TypeError(f"generate: output {i} has no text (got {type(r).__name__}); return str or objects with .text")
            items.append((text, None if ids is None else np.asarray(ids).tolist()))
    else:
        raise TypeError(f"generate: expected a list of outputs, got {type(result).__name__}")
    if len(items) != n:
        raise ValueError(f"generate: returned {len(items)} outputs for {n} prompts")
    return items


def accepts_kwarg(fn: Callable, name: str) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    return name in sig.parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())


def as_generate(generate_or_model: Any) -> Callable:
    if hasattr(generate_or_model, "generate") and callable(generate_or_model.generate):
        return generate_or_model.generate
    if callable(generate_or_model):
        return generate_or_model
    raise TypeError(f"generate: expected a callable prompts -> texts or a model with .generate, got {type(generate_or_model).__name__}")


def default_grader() -> Callable:
    try:
        from ..kernels.grading import grade_responses
    except ImportError as e:  # pragma: no cover - until the grader is built in
        raise RuntimeError(
            "grader: o1pruner.grading is not available in this build; pass grader=callable(responses, golds) -> bools"
        ) from e
    return grade_responses


def default_answer_grader() -> Callable:
    try:
        from ..kernels.grading import grade_many
    except ImportError as e:  # pragma: no cover
        raise RuntimeError("grader: o1pruner.grading is not available; pass grader=callable(answers, golds) -> bools") from e
    return grade_many


def default_extract() -> Optional[Callable]:
    try:
        from ..kernels.grading import extract_answer
    except ImportError:  # pragma: no cover
        return None
    return extract_answer


def grade_texts(grader: Callable, texts: Sequence[str], golds: Sequence[str], where: str) -> np.ndarray:
    got = grader(list(texts), list(golds))
    arr = np.asarray(got)
    if arr.shape != (len(texts),):
        raise ValueError(f"grader: returned shape {arr.shape} for {len(texts)} {where}")
    if arr.dtype.kind == "b":
        return arr
    if arr.dtype.kind in "iuf" and np.all((arr == 0) | (arr == 1)):
        return arr.astype(bool)
    raise ValueError(f"grader: must return booleans (or 0/1) for the {where}, got dtype {arr.dtype}")


def batch_seed(seed: int, b: int) -> int:
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, b]).generate_state(1)[0])


def lengths_and_correct(
    samples: List[Dict[str, Any]], tokenizer, grader, grade_from: str, where: str
) -> Tuple[np.ndarray, np.ndarray]:
    n = len(samples)
    lengths = np.empty(n, dtype=np.float64)
    need_tok = []
    for i, r in enumerate(samples):
        for f in ("solution", "ground_truth_answer"):
            if r.get(f) is None:
                raise ValueError(f"{where}[{i}]: missing field {f!r}")
        L = r.get("length")
        if L is None and r.get("token_ids") is not None and tokenizer is None:
            L = len(r["token_ids"])
        if L is None:
            if tokenizer is None:
                raise ValueError(f"{where}[{i}]: missing field 'length' (pass tokenizer= to count the solution's tokens)")
            need_tok.append(i)
            continue
        if isinstance(L, bool) or not isinstance(L, (int, float, np.integer, np.floating)):
            raise ValueError(f"{where}[{i}]: field 'length' must be a number, got {type(L).__name__}")
        if not (L > 0) or not math.isfinite(L):
            raise ValueError(f"{where}[{i}]: field 'length' must be > 0 and finite, got {L}")
        lengths[i] = L
    if need_tok:
        lengths[need_tok] = count_tokens(tokenizer, [samples[i]["solution"] for i in need_tok], where=f"{where} (solution)")
    correct = np.zeros(n, dtype=bool)
    need_grade = []
    for i, r in enumerate(samples):
        c = r.get("correct")
        if c is None:
            need_grade.append(i)
        elif isinstance(c, (bool, np.bool_)) or (isinstance(c, (int, float)) and c in (0, 1)):
            correct[i] = bool(c)
        else:
            raise ValueError(f"{where}[{i}]: field 'correct' must be a boolean, got {c!r}")
    if need_grade:
        if grade_from == "solution":
            fn = grader if grader is not None else default_grader()
            texts = [samples[i]["solution"] for i in need_grade]
        elif grade_from == "answer":
            fn = grader if grader is not None else default_answer_grader()
            texts = []
            for i in need_grade:
                a = samples[i].get("answer")
                if a is None:
                    raise ValueError(f"{where}[{i}]: missing field 'answer' (grade_from='answer')")
                texts.append(str(a))
        else:
            raise ValueError(f"grade_from: must be 'solution' or 'answer', got {grade_from!r}")
        correct[need_grade] = grade_texts(fn, texts, [str(samples[i]["ground_truth_answer"]) for i in need_grade], where)
    return lengths, correct
