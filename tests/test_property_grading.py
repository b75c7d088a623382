"""Property-based tests of the C answer grader behind o1pruner.grading:
random LaTeX-like and arbitrary Unicode strings (lone surrogates, NUL, deep
nesting), odd argument types. There is no float64 twin here, so the checks
are invariants: the batched, multi-threaded calls agree with the single
ones, results are deterministic and of the documented types, an extracted
answer is never longer than its text, and anything else raises a named
ValueError/TypeError. (Coverage-guided fuzzing of the same C code:
tests/fuzz/.)"""

import numpy as np
from hypothesis import given, strategies as st

import o1pruner
from o1pruner.kernels.grading import EXTRACT_MODES, Verdict

from property_support import COUNTS, Rejected, check_call, mostly, odd_objects

MOD = "grading"

TOKENS = [r"\boxed{", r"\fbox{", "{", "}", r"\frac", r"\dfrac", r"\sqrt", "^", "_", "(", ")", "[", "]",
          r"\left(", r"\right)", ",", ".", "-", "+", "*", "/", "=", "$", "$$", r"\(", r"\)", r"\[", r"\]",
          "1", "2", "0", "3.14", "1e5", "x", "y", r"\pi", r"\infty", "answer is ", "Answer: ", "####",
          r"\text{", r"\mbox{", "cm", "%", r"\%", r"\$", " ", "\n", r"\cup", r"\in", r"\le", r"\{", r"\}",
          r"\begin{pmatrix}", r"\end{pmatrix}", "&", r"\\", "e", "i", "sin", r"\sin", "!", "0.", ".5",
          "\x00", "\ud800", "√", "π", "½", "−", "９"]

latexish = st.lists(st.sampled_from(TOKENS) | st.text(max_size=3), max_size=40).map("".join)
deep = st.tuples(st.sampled_from(["{", r"\frac{", "(", r"\sqrt{", r"\boxed{", "[", "-", "^{"]),
                 st.integers(0, 3000), st.sampled_from(["1", "x", "", "}"])).map(lambda t: t[0] * t[1] + t[2])
texts = st.one_of(latexish, latexish, latexish, st.text(max_size=60), deep)
MODES = mostly(st.sampled_from(["last_boxed", "auto", "first_boxed", "answer_is", "hash", "last_number",
                                "all_boxed", "last_math"]) | st.lists(st.sampled_from(list(EXTRACT_MODES)),
                                                                      min_size=1, max_size=3),
               st.sampled_from(["", "boxed", [], ["last_boxed", 3], None, 0]), p_odd=1)


def utf8_len(s):
    return len(s.encode("utf-8", "surrogatepass"))


@given(data=st.data())
def test_extract(data):
    draw = data.draw
    ts = draw(st.lists(texts, max_size=6))
    mode = draw(MODES)
    if draw(st.integers(0, 19)) == 19:
        ts = draw(odd_objects) if draw(st.booleans()) else ts + [draw(odd_objects)]
    try:
        many = check_call(MOD, o1pruner.extract_answers, (ts,), dict(mode=mode), names=("texts", "mode"))
    except Rejected:
        return
    assert isinstance(many, list) and len(many) == len(ts)
    for t, a in zip(ts, many):
        one = check_call(MOD, o1pruner.extract_answer, (t,), dict(mode=mode), names=("text", "mode"))
        assert one == a
        assert a is None or isinstance(a, str)
        if a is not None and mode != "all_boxed" and not (isinstance(mode, list) and "all_boxed" in mode):
            assert utf8_len(a) <= utf8_len(t)


@given(s=texts | odd_objects)
def test_normalize(s):
    try:
        out = check_call(MOD, o1pruner.normalize_answer, (s,), names=("answer",))
    except Rejected:
        assert not isinstance(s, str)
        return
    assert isinstance(out, str)
    assert o1pruner.normalize_answer(s) == out


@given(data=st.data())
def test_compare_and_grade_many_agree(data):
    draw = data.draw
    n = draw(st.integers(0, 6))
    preds = draw(st.lists(texts | st.none(), min_size=n, max_size=n))
    golds = draw(st.lists(texts, min_size=n, max_size=n))
    opts = dict(rtol=draw(mostly(st.sampled_from([1e-6, 0.0, 1e-3]), st.sampled_from([1.0, -1e-3, np.nan, "1e-6",
                                                                                     None]))),
                strict_fractions=draw(st.booleans()), ordered_lists=draw(st.booleans()))
    if draw(st.integers(0, 19)) == 19:
        golds = golds + ["1"] if draw(st.booleans()) else [draw(odd_objects)] + golds[1:]
    try:
        res = check_call(MOD, o1pruner.grade_many, (preds, golds), dict(details=True, **opts),
                         names=("predictions", "golds", "rtol", "strict_fractions", "ordered_lists"))
    except Rejected:
        return
    assert res.correct.dtype == bool and res.correct.shape == (n,)
    assert set(np.unique(res.verdict).tolist()) <= {0, 1, 2}
    for p, g, v in zip(preds, golds, res.verdict):
        if p is None:
            assert v == Verdict.NOT_EQUAL
            continue
        one = check_call(MOD, o1pruner.compare_answers, (p, g), opts, names=("prediction", "gold"))
        assert isinstance(one, Verdict) and one == v, (p, g, one, v)
        assert o1pruner.grade(p, g, **opts) == (v == Verdict.EQUAL)


@given(x=latexish)
def test_an_answer_is_never_different_from_itself(x):
    # (an answer that normalises to nothing is no answer: never correct)
    if not o1pruner.normalize_answer(x).strip():
        return
    v = check_call(MOD, o1pruner.compare_answers, (x, x), names=("prediction", "gold"))
    assert v != Verdict.NOT_EQUAL, repr(x)


@given(data=st.data())
def test_grade_responses_is_extract_then_grade(data):
    draw = data.draw
    n = draw(st.integers(0, 5))
    responses = draw(st.lists(texts, min_size=n, max_size=n))
    golds = draw(st.lists(latexish, min_size=n, max_size=n))
    mode = draw(MODES)
    try:
        res = check_call(MOD, o1pruner.grade_responses, (responses, golds), dict(extract=mode, details=True),
                         names=("responses", "golds", "extract"))
    except Rejected:
        return
    answers = o1pruner.extract_answers(responses, mode)
    want = o1pruner.grade_many(answers, golds, details=True)
    np.testing.assert_array_equal(res.verdict, want.verdict)
    np.testing.assert_array_equal(res.found, [a is not None for a in answers])


# ---- the raw _core entry points (mode ids instead of names) -------------------------

from o1pruner._loader import _core  # noqa: E402

ID_TO_NAME = {v: k for k, v in EXTRACT_MODES.items()}
mode_ids = st.lists(mostly(st.integers(0, 6), st.sampled_from([-1, 7, 2**40, -2**63, 1.5, "0", None, True])),
                    max_size=4) | st.sampled_from([None, "ab", 3, [0] * 40])


@given(ts=st.lists(texts, max_size=5), modes=mode_ids)
def test_core_extract_equals_public(ts, modes):
    try:
        got = check_call(MOD, _core.grader_extract, (ts, modes), names=("texts", "modes"))
    except Rejected:
        return
    assert isinstance(got, list) and len(got) == len(ts)
    if isinstance(modes, list) and modes and all(type(m) is int and m in ID_TO_NAME for m in modes):
        assert got == o1pruner.extract_answers(ts, [ID_TO_NAME[m] for m in modes])


@given(preds=st.lists(texts | st.none(), max_size=4), modes=mode_ids | st.none(), data=st.data())
def test_core_compare(preds, modes, data):
    golds = data.draw(st.lists(latexish, min_size=len(preds), max_size=len(preds)))
    try:
        verdict, found = check_call(MOD, _core.grader_compare, (preds, golds, modes),
                                    names=("predictions", "golds", "modes"))
    except Rejected:
        return
    assert verdict.dtype == np.int8 and verdict.shape == (len(preds),) and found.dtype == bool
    assert set(verdict.tolist()) <= {0, 1, 2}
    if modes is None or (isinstance(modes, list) and not modes):
        # the predictions are answers already (an empty mode list also means
        # no extraction here, while grader_extract finds nothing with it)
        np.testing.assert_array_equal(found, [p is not None for p in preds])
        np.testing.assert_array_equal(verdict, o1pruner.grade_many(preds, golds, details=True).verdict)
    else:  # extraction first: found where it found an answer, as extract_answers
        answers = _core.grader_extract([p if p is not None else "" for p in preds], modes)
        np.testing.assert_array_equal(found, [p is not None and a is not None for p, a in zip(preds, answers)])
        assert not verdict[~found].any()
