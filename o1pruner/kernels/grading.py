"""Math answer grading: the accuracy term A(x, y) of the reward.

Find the final answer in a response, normalise it and decide whether it equals
the ground truth. The work is done in C (``o1pruner._core``): extraction,
a Hendrycks/PRM800K-compatible normaliser, exact big-number arithmetic, an
expression evaluator and structural comparison. The C layer answers
:class:`Verdict` ``EQUAL``, ``NOT_EQUAL`` or ``UNKNOWN``; only the unknown
cases may go, on request, to a bounded sympy check in worker processes
(:class:`SympyFallback`).

What the C layer decides
------------------------
- Normalisation: ``\\text{}``/``\\mathrm{}`` and other wrappers, ``\\left``/``\\right``,
  ``\\!``, ``\\,`` and spaces, ``^\\circ``, ``\\$`` and currency, ``\\%`` and
  "percent", ``\\dfrac``/``\\tfrac``, units after a number ("15 cm^2",
  ``\\text{ inches}``), a ``$..$``/``\\boxed{}`` wrapper, thousands separators
  (``1,000``, ``10{,}000``, ``1\\,000``, ``1 000``), "million"/"billion".
- Numbers: integers and decimals of any size compared exactly (no overflow),
  fractions, mixed numbers (``3\\frac12``), ``+ - * /``, implicit
  multiplication, powers, ``\\sqrt``, ``\\sqrt[n]``, ``\\pi``, ``e``,
  scientific notation, complex numbers ``a+bi``, ``\\binom``, ``n!``, trig and
  log functions. Rational values are compared exactly (big integers);
  irrational ones in double precision.
- Tolerance: exact forms must agree exactly (rationals) or to 1e-9 relative
  (irrational); ``rtol`` (default 1e-6) applies only when one side is a
  decimal approximation of a value the other side writes exactly
  (``0.0833333`` vs ``\\frac{1}{12}``, ``1.414214`` vs ``\\sqrt2``). Two
  terminating decimals or fractions are never "close enough": ``0.33`` is not
  ``\\frac13``.
- Structures: tuples and ordered lists elementwise; bare comma lists
  (``1, -2``) and sets ``\\{..\\}`` in any order; intervals and unions (open or
  closed ends must match; ``x > 5`` equals ``(5, \\infty)``); matrices
  (``pmatrix``, ``bmatrix``, ``array``); ``\\pm`` as the list of both values;
  multiple-choice letters (``(B)``, ``\\text{(B)}``, ``B``); text answers
  (case and space insensitive); "x = 5" answers 5; equations equal up to a
  nonzero factor, inequalities up to a positive one.
- Expressions in variables: both sides are evaluated at 6 deterministic
  pseudo-random rational points (exactly when the values are rational);
  UNKNOWN when evaluation fails or results are too close to call.
- ``12102`` is NOT equal to ``(12,102)`` (a bug of the PRM800K grader), and a
  comma is never a decimal mark (``1,22`` is a list).

Bad input: any ``str`` (empty, megabytes long, lone surrogates, unbalanced or
deeply nested braces) gives a verdict or ``None``; parsing is bounded
(nesting beyond about 80 levels or answers longer than 16 KiB after
normalisation are UNKNOWN). Lone surrogates are encoded with
``"surrogatepass"``: they compare equal only to the same surrogates.
"""

from __future__ import annotations

import enum
from typing import Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from .._loader import _core

__all__ = [
    "Verdict",
    "EXTRACT_MODES",
    "extract_answer",
    "extract_answers",
    "normalize_answer",
    "compare_answers",
    "compare",
    "grade",
    "grade_many",
    "grade_responses",
    "GradingResult",
    "SympyFallback",
]


class Verdict(enum.IntEnum):
    """Three-valued result of a comparison made by the C layer."""

    NOT_EQUAL = 0
    EQUAL = 1
    UNKNOWN = 2


#: Extraction modes by name (see :func:`extract_answer`).
EXTRACT_MODES = {
    "last_boxed": 0,
    "first_boxed": 1,
    "answer_is": 2,
    "hash": 3,
    "last_number": 4,
    "all_boxed": 5,
    "last_math": 6,
}
_AUTO = ("last_boxed", "answer_is", "hash", "last_number")

DEFAULT_RTOL = 1e-6

ModeSpec = Union[str, Sequence[str]]


def _modes(mode: ModeSpec, name: str = "mode") -> Tuple[int, ...]:
    if isinstance(mode, str):
        names: Sequence[str] = _AUTO if mode == "auto" else (mode,)
    else:
        try:
            names = tuple(mode)
        except TypeError:
            raise TypeError(f"{name}: expected a mode name or a sequence of names, got {type(mode).__name__}") from None
    ids = []
    for m in names:
        if not isinstance(m, str) or m not in EXTRACT_MODES:
            choices = ", ".join(["auto", *EXTRACT_MODES])
            raise ValueError(f"{name}: unknown extraction mode {m!r}; choose from {choices}")
        ids.append(EXTRACT_MODES[m])
    if not ids:
        raise ValueError(f"{name}: give at least one extraction mode")
    return tuple(ids)


def _check_str(value, name: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected str, got {type(value).__name__}")


def extract_answer(text: str, mode: ModeSpec = "last_boxed") -> Optional[str]:
    """Final answer of a response, or None when none is found.

    Parameters
    ----------
    text : str
        The response (chain of thought and answer).
    mode : str or sequence of str, default "last_boxed"
        Where to look. A sequence is tried in order until one mode finds an
        answer. Modes:

        - ``"last_boxed"``: content of the last ``\\boxed{..}`` / ``\\fbox{..}``
          / ``\\boxed 5`` (nested braces handled; the box that closes last).
          Long self-checking solutions box intermediate results, so the last
          box is the answer.
        - ``"first_boxed"``: the first box (what the public O1-Pruner code
          does).
        - ``"all_boxed"``: every top-level box, joined with ``", "``.
        - ``"answer_is"``: the text after the last "answer is" / "Answer:",
          up to the end of the sentence or line (a math block right after it
          is taken whole).
        - ``"hash"``: GSM8K's ``#### 42`` (the rest of that line).
        - ``"last_math"``: the last ``$..$``, ``$$..$$``, ``\\(..\\)`` or
          ``\\[..\\]`` block.
        - ``"last_number"``: the last number in the text (``-1,234.5``,
          ``3/4``).
        - ``"auto"``: the default order ``last_boxed``, ``answer_is``,
          ``hash``, ``last_number``.

    Returns
    -------
    str or None

    Raises
    ------
    TypeError
        If `text` is not a str.
    ValueError
        If `mode` names an unknown mode.

    Examples
    --------
    >>> extract_answer(r"so x = \\boxed{2}; checking, \\boxed{\\frac{1}{2}}.")
    '\\\\frac{1}{2}'
    >>> extract_answer("... #### 1,200", mode="auto")
    '1,200'
    >>> extract_answer("no answer here") is None
    True
    """
    _check_str(text, "text")
    return _core.grader_extract([text], _modes(mode))[0]


def extract_answers(texts: Sequence[str], mode: ModeSpec = "last_boxed") -> List[Optional[str]]:
    """:func:`extract_answer` over many texts (in C, GIL released, all threads).

    Parameters
    ----------
    texts : sequence of str
    mode : str or sequence of str, default "last_boxed"
        See :func:`extract_answer`.

    Returns
    -------
    list of (str or None)

    Raises
    ------
    TypeError
        If `texts` is not a sequence of str (the message names the element).
    """
    return _core.grader_extract(texts, _modes(mode))


def normalize_answer(answer: str) -> str:
    """The normalised form of an answer, as the comparison reads it.

    Examples
    --------
    >>> normalize_answer(r"$\\boxed{10{,}000 \\text{ cm}^2}$")
    '10000'
    """
    _check_str(answer, "answer")
    return _core.grader_normalize(answer)


def _opts(rtol, strict_fractions, ordered_lists):
    if isinstance(rtol, bool) or not isinstance(rtol, (int, float, np.floating, np.integer)):
        raise TypeError(f"rtol: expected a float, got {type(rtol).__name__}")
    return dict(rtol=float(rtol), strict_fractions=bool(strict_fractions), ordered_lists=bool(ordered_lists))


def compare_answers(
    prediction: str,
    gold: str,
    *,
    rtol: float = DEFAULT_RTOL,
    strict_fractions: bool = False,
    ordered_lists: bool = False,
) -> Verdict:
    """Three-valued comparison of an answer with the ground truth, in C.

    Parameters
    ----------
    prediction : str
        The model's answer (already extracted; a ``\\boxed{}`` or ``$..$``
        around it is fine).
    gold : str
        The ground-truth answer.
    rtol : float, default 1e-6
        Relative tolerance for a decimal approximation against an exact value
        (see the module docstring). Exact forms are compared exactly.
    strict_fractions : bool, default False
        PRM800K's rules: two fractions must be written the same
        (``\\frac{2}{4}`` is not ``\\frac12``) and an integer gold answer needs
        an integer prediction.
    ordered_lists : bool, default False
        Compare bare comma lists and sets in order (by default they are
        order-insensitive; tuples, intervals and matrices are always ordered).

    Returns
    -------
    Verdict
        EQUAL, NOT_EQUAL, or UNKNOWN (the C layer could not decide).

    Raises
    ------
    TypeError
        If `prediction` or `gold` is not a str.

    Examples
    --------
    >>> compare_answers(r"\\dfrac{1}{2}", "0.5")
    <Verdict.EQUAL: 1>
    >>> compare_answers("12102", "(12,102)")
    <Verdict.NOT_EQUAL: 0>
    """
    _check_str(prediction, "prediction")
    _check_str(gold, "gold")
    v, _ = _core.grader_compare([prediction], [gold], None, **_opts(rtol, strict_fractions, ordered_lists))
    return Verdict(int(v[0]))


def grade(
    prediction: Optional[str],
    gold: str,
    *,
    rtol: float = DEFAULT_RTOL,
    strict_fractions: bool = False,
    ordered_lists: bool = False,
    fallback: Union[None, str, "SympyFallback"] = None,
    timeout: float = 5.0,
) -> bool:
    """True when `prediction` equals `gold` (UNKNOWN counts as False unless a
    fallback decides it).

    Parameters
    ----------
    prediction : str or None
        The extracted answer; None (no answer) is never correct.
    gold : str
    rtol, strict_fractions, ordered_lists
        See :func:`compare`.
    fallback : None, "sympy" or SympyFallback, default None
        Who decides the UNKNOWN cases (see :func:`grade_responses`).
    timeout : float, default 5.0
        Per-item time limit of the fallback, in seconds.

    Returns
    -------
    bool

    Examples
    --------
    >>> grade(r"\\boxed{1,000}", "1000")
    True
    """
    if prediction is not None:
        _check_str(prediction, "prediction")
    _check_str(gold, "gold")
    return bool(
        grade_many([prediction], [gold], rtol=rtol, strict_fractions=strict_fractions,
                   ordered_lists=ordered_lists, fallback=fallback, timeout=timeout)[0]
    )


class GradingResult(NamedTuple):
    """Everything :func:`grade_responses` and :func:`grade_many` know.

    Attributes
    ----------
    correct : ndarray of bool, shape (S,)
        Final correctness (UNKNOWN without a fallback decision is False).
    verdict : ndarray of int8, shape (S,)
        The C layer's :class:`Verdict` per item (before the fallback).
    found : ndarray of bool, shape (S,)
        Whether an answer was extracted (all True for :func:`grade_many`).
    answers : list of (str or None)
        Extracted answers (:func:`grade_responses`), else the predictions.
    n_unknown : int
        Items the C layer left UNKNOWN.
    n_fallback_equal : int
        Of those, items the fallback found equal.
    n_timeout : int
        Fallback items that hit the time limit (counted as not equal).
    n_fallback_error : int
        Fallback items that failed to parse or whose worker died (not equal).
    """

    correct: np.ndarray
    verdict: np.ndarray
    found: np.ndarray
    answers: List[Optional[str]]
    n_unknown: int
    n_fallback_equal: int
    n_timeout: int
    n_fallback_error: int


def _check_fallback(fallback, timeout) -> None:
    if fallback is not None and fallback != "sympy":
        from ._sympy_fallback import SympyFallback

        if not isinstance(fallback, SympyFallback):
            raise ValueError(f"fallback: expected None, 'sympy' or a SympyFallback, got {fallback!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout: expected a positive number of seconds, got {timeout!r}")


def _run_fallback(fallback, timeout, preds, golds, verdict, correct):
    """Send UNKNOWN items to the sympy fallback; returns (n_equal, n_timeout, n_error)."""
    idx = np.flatnonzero(verdict == Verdict.UNKNOWN)
    if fallback is None or idx.size == 0:
        return 0, 0, 0
    from ._sympy_fallback import SympyFallback, resolve_fallback

    fb, owned = resolve_fallback(fallback, timeout)
    if fb is None:  # sympy not importable: unknown stays not equal
        return 0, 0, 0
    try:
        pairs = [(normalize_answer(preds[i]), normalize_answer(golds[i])) for i in idx]
        res = fb.check(pairs)
    finally:
        if owned:
            fb.close()
    n_eq = n_to = n_err = 0
    for i, r in zip(idx, res):
        if r == SympyFallback.EQUAL:
            correct[i] = True
            n_eq += 1
        elif r == SympyFallback.TIMEOUT:
            n_to += 1
        elif r == SympyFallback.ERROR:
            n_err += 1
    return n_eq, n_to, n_err


def grade_many(
    predictions: Sequence[Optional[str]],
    golds: Sequence[str],
    *,
    rtol: float = DEFAULT_RTOL,
    strict_fractions: bool = False,
    ordered_lists: bool = False,
    fallback: Union[None, str, "SympyFallback"] = None,
    timeout: float = 5.0,
    details: bool = False,
):
    """Grade many (prediction, gold) pairs in C: GIL released, all threads.

    Parameters
    ----------
    predictions : sequence of (str or None), shape (S,)
        Extracted answers; None means "no answer" (not correct).
    golds : sequence of str, shape (S,)
    rtol, strict_fractions, ordered_lists
        See :func:`compare`.
    fallback : None, "sympy" or SympyFallback, default None
        See :func:`grade_responses`.
    timeout : float, default 5.0
        Per-item time limit of the fallback, in seconds.
    details : bool, default False
        Return a :class:`GradingResult` instead of the bool array.

    Returns
    -------
    ndarray of bool, shape (S,), or GradingResult

    Raises
    ------
    TypeError
        If an argument is not a sequence of str, naming the element
        (``predictions[3]: expected str or None, got int``).
    ValueError
        If the lengths differ.
    """
    opts = _opts(rtol, strict_fractions, ordered_lists)
    _check_fallback(fallback, timeout)
    verdict, found = _core.grader_compare(predictions, golds, None, **opts)
    correct = verdict == Verdict.EQUAL
    n_eq, n_to, n_err = _run_fallback(fallback, timeout, list(predictions), list(golds), verdict, correct)
    if not details:
        return correct
    return GradingResult(correct, verdict, found, list(predictions), int((verdict == Verdict.UNKNOWN).sum()),
                         n_eq, n_to, n_err)


def grade_responses(
    responses: Sequence[str],
    golds: Sequence[str],
    *,
    extract: ModeSpec = "last_boxed",
    fallback: Union[None, str, "SympyFallback"] = None,
    timeout: float = 5.0,
    rtol: float = DEFAULT_RTOL,
    strict_fractions: bool = False,
    ordered_lists: bool = False,
    details: bool = False,
):
    """Correctness A(x, y) of full responses: extract, then grade, in C.

    The result is ready for :func:`o1pruner.reference_stats` as `correct`.

    Parameters
    ----------
    responses : sequence of str, shape (S,)
        Model outputs (chain of thought with the final answer).
    golds : sequence of str, shape (S,)
        Ground-truth answers, one per response.
    extract : str or sequence of str, default "last_boxed"
        Extraction mode(s), see :func:`extract_answer` (``"auto"`` tries
        last_boxed, answer_is, hash, last_number in that order). A response
        with no answer is not correct.
    fallback : None, "sympy" or SympyFallback, default None
        Who decides the items the C layer leaves UNKNOWN. None: they count as
        not correct. ``"sympy"``: when sympy is importable (the optional extra
        ``o1pruner[sympy]``), they are checked with sympy in worker processes
        started for this call, each item under a hard `timeout` (the worker is
        killed and replaced; nothing is signal-based, so it works from threads
        and notebooks). A timed-out item is not correct and counted. Pass a
        :class:`SympyFallback` to reuse its workers across calls.
    timeout : float, default 5.0
        Per-item limit for the fallback, in seconds.
    rtol, strict_fractions, ordered_lists
        See :func:`compare`.
    details : bool, default False
        Return a :class:`GradingResult` (verdicts, extracted answers, counts of
        unknown, fallback and timed-out items) instead of the bool array.

    Returns
    -------
    ndarray of bool, shape (S,), or GradingResult

    Raises
    ------
    TypeError
        If an argument is not a sequence of str (the message names the
        element).
    ValueError
        If the lengths differ or a mode is unknown.

    Examples
    --------
    >>> grade_responses([r"... so \\boxed{4}", "I think 5"], ["4", "5"])
    array([ True, False])
    >>> grade_responses([r"... so \\boxed{4}", "I think 5"], ["4", "5"], extract="auto")
    array([ True,  True])
    """
    modes = _modes(extract, "extract")
    opts = _opts(rtol, strict_fractions, ordered_lists)
    _check_fallback(fallback, timeout)
    verdict, found = _core.grader_compare(responses, golds, modes, **opts)
    correct = verdict == Verdict.EQUAL
    answers: List[Optional[str]] = []
    need_answers = details or (fallback is not None and bool((verdict == Verdict.UNKNOWN).any()))
    if need_answers:
        answers = _core.grader_extract(responses, modes)
    n_eq, n_to, n_err = 0, 0, 0
    if fallback is not None:
        preds = [a if a is not None else "" for a in answers] if answers else []
        n_eq, n_to, n_err = _run_fallback(fallback, timeout, preds, list(golds), verdict, correct)
    if not details:
        return correct
    return GradingResult(correct, verdict, found, answers, int((verdict == Verdict.UNKNOWN).sum()),
                         n_eq, n_to, n_err)


def __getattr__(name):  # SympyFallback lives in its own module (imports nothing heavy)
    if name == "SympyFallback":
        from ._sympy_fallback import SympyFallback

        return SympyFallback
    raise AttributeError(name)


#: The former name of :func:`compare_answers` (``o1pruner.compare`` is the
#: comparison of two evaluations); kept for old code.
compare = compare_answers
