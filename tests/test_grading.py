"""Unit tests of the answer grader (o1pruner.grading): extraction,
normalisation, numbers, structures, switches, bad input, threads, leaks."""

import threading

import numpy as np
import pytest

import o1pruner
from o1pruner.kernels.grading import Verdict, compare, extract_answer, extract_answers, grade, grade_many, grade_responses
from o1pruner.kernels.grading import normalize_answer

from helpers import leak_check

EQ, NE, UNK = Verdict.EQUAL, Verdict.NOT_EQUAL, Verdict.UNKNOWN


# ---- extraction ---------------------------------------------------------------

@pytest.mark.parametrize(
    "text, mode, want",
    [
        (r"first \boxed{1} then \boxed{2}", "last_boxed", "2"),
        (r"first \boxed{1} then \boxed{2}", "first_boxed", "1"),
        (r"\boxed{1} and \boxed{2}", "all_boxed", "1, 2"),
        (r"nested \boxed{\frac{1}{2}}.", "last_boxed", r"\frac{1}{2}"),
        (r"deep \boxed{a{b{c}}d}", "last_boxed", "a{b{c}}d"),
        (r"bare \boxed 5.", "last_boxed", "5"),
        (r"\fbox{7}", "last_boxed", "7"),
        (r"escaped \boxed{\{1, 2\}}", "last_boxed", r"\{1, 2\}"),
        (r"json \\boxed{840}", "last_boxed", "840"),
        (r"outer \boxed{x + \boxed{3}}", "last_boxed", r"x + \boxed{3}"),
        (r"unclosed \boxed{3} then \boxed{4", "last_boxed", "3"),
        ("The answer is 42.", "answer_is", "42"),
        ("so the final answer is $\\frac{3}{4}$. I hope it is correct.", "answer_is", r"\frac{3}{4}"),
        ("Final Answer: The largest $n$ is 34.", "answer_is", "34"),
        ("Answer: 1.5\nmore text", "answer_is", "1.5"),
        ("reasoning\n#### 1,200\n", "hash", "1,200"),
        ("costs 3 and then -1,234.50 dollars.", "last_number", "-1,234.50"),
        ("ratio 3/4 overall", "last_number", "3/4"),
        (r"We get $x=1$ and $$y = 2$$ done", "last_math", "y = 2"),
        (r"so \(a+b\) and \[c\]", "last_math", "c"),
        (r"no box, answer is 7", ("last_boxed", "answer_is"), "7"),
        (r"no box, 7 apples", "auto", "7"),
    ],
)
def test_extract(text, mode, want):
    assert extract_answer(text, mode) == want


@pytest.mark.parametrize("text", ["", "nothing here", r"\boxed{", "}}}}{{{", "#### "])
def test_extract_none(text):
    assert extract_answer(text) is None
    assert extract_answer(text, ("last_boxed", "answer_is", "hash")) is None


def test_extract_default_is_last_boxed_and_batch():
    texts = [r"\boxed{1} \boxed{2}", "none", r"\boxed{3}"]
    assert extract_answers(texts) == ["2", None, "3"]
    assert extract_answers(texts, "first_boxed") == ["1", None, "3"]
    assert extract_answers([]) == []


def test_extract_bad_arguments():
    with pytest.raises(TypeError, match="text"):
        extract_answer(5)
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        extract_answers(["a", 3])
    with pytest.raises(TypeError, match="texts"):
        extract_answers("abc")
    with pytest.raises(ValueError, match="mode"):
        extract_answer("x", "middle_boxed")
    with pytest.raises(ValueError, match="mode"):
        extract_answer("x", ())


# ---- normalisation ------------------------------------------------------------

@pytest.mark.parametrize(
    "pred, gold",
    [
        (r"\text{(B)}", "B"),
        (r"\mathrm{Navin}", "Navin"),
        (r"\left( 3, \frac{\pi}{2} \right)", r"(3,\frac{\pi}{2})"),
        (r"90^\circ", "90"),
        (r"90^{\circ}", "90"),
        (r"\$18.90", "18.90"),
        ("$32,\\!348", "32348"),
        (r"10{,}000", "10000"),
        (r"1\,000", "1000"),
        ("1 000", "1000"),
        ("7,425,000", "7425000"),
        (r"50\%", "50"),
        ("28 percent", "28"),
        (r"\dfrac{3}{4}", r"\frac34"),
        (r"\tfrac{3}{4}", "0.75"),
        (r"15\mbox{ cm}^2", "15"),
        (r"864 \mbox{ inches}^2", "864"),
        (r"125\textnormal{ miles}", "125"),
        ("5 square units", "5"),
        (r"x = 5", "5"),
        (r"k=\frac{1}{3}", r"\frac13"),
        ("2.5 million", "2500000"),
        (r"\boxed{\dfrac{1}{2}}", "0.5"),
        ("$$\\frac12$$", "0.5"),
        (r"\(\sqrt3\)", r"\sqrt{3}"),
        ("5.", "5"),
        (".5", "0.5"),
        ("−3", "-3"),
        ("3π", r"3\pi"),
        ("√2", r"\sqrt{2}"),
        ("1/2", r"\frac{1}{2}"),
    ],
)
def test_normalisation_equal(pred, gold):
    assert compare(pred, gold) == EQ, (normalize_answer(pred), normalize_answer(gold))
    assert compare(gold, pred) == EQ


def test_normalize_answer_shape():
    assert normalize_answer(r"$\boxed{10{,}000 \text{ cm}^2}$") == "10000"
    assert normalize_answer(r"\left(1,2\right)") == "(1,2)"
    with pytest.raises(TypeError, match="answer"):
        normalize_answer(None)


# ---- numbers ------------------------------------------------------------------

@pytest.mark.parametrize(
    "pred, gold, want",
    [
        ("1000.0", "1000", EQ),
        ("0.50", r"\frac{1}{2}", EQ),
        (r"\frac{2}{4}", r"\frac12", EQ),
        ("0.33", r"\frac13", NE),
        ("0.3333333333", r"\frac13", EQ),
        ("0.0833333333333333", r"\frac{1}{12}", EQ),
        ("3.14", r"\pi", NE),
        ("3.14159265", r"\pi", EQ),
        (r"137 \frac{1}{2}", "137.5", EQ),
        (r"-2\frac{1}{2}", "-2.5", EQ),
        (r"2\frac{\pi}{3}", r"\frac{2\pi}{3}", EQ),
        (r"3\sqrt{2}", r"\sqrt{18}", EQ),
        (r"\sqrt[3]{-8}", "-2", EQ),
        (r"\sqrt[3]{16}", r"2\sqrt[3]{2}", EQ),
        (r"2^{10}", "1024", EQ),
        ("2^10", "1024", EQ),
        (r"2^{-3}", "0.125", EQ),
        (r"(-8)^{1/3}", "-2", EQ),
        ("1.5e3", "1500", EQ),
        (r"3 \times 10^{4}", "30000", EQ),
        (r"1+274i", "274i+1", EQ),
        (r"\frac{1}{1+i}", r"\frac{1-i}{2}", EQ),
        ("i^2", "-1", EQ),
        (r"\binom{5}{2}", "10", EQ),
        ("5!", "120", EQ),
        (r"\log_2 8", "3", EQ),
        (r"e^{-1}", r"\frac{1}{e}", EQ),
        (r"\sin\frac{\pi}{6}", r"\frac12", EQ),
        (r"|-3|", "3", EQ),
        (r"\lfloor 3.7 \rfloor", "3", EQ),
        ("50", "51", NE),
        ("-5", "5", NE),
        ("0", "-0", EQ),
        ("007", "7", EQ),
    ],
)
def test_numbers(pred, gold, want):
    assert compare(pred, gold) == want


def test_big_numbers_exact():
    a = "1" + "0" * 5000
    assert compare(a, a + ".000") == EQ
    assert compare(a, "1" + "0" * 4999 + "1") == NE
    assert compare(r"2^{2008}-2", r"2^{2008}-2") == EQ
    # 2^200 - 1 and 2^200 differ by one part in 1e60: exact arithmetic sees it
    assert compare(r"2^{200}-1", r"2^{200}") == NE
    assert compare(str(2**200 - 1), r"2^{200}-1") == EQ
    assert compare(str(2**200), r"2^{200}-1") == NE
    assert compare("100!", str(__import__("math").factorial(100))) == EQ
    # beyond double range, still exact (no "inf == inf")
    assert compare(r"2^{2008}-3", r"2^{2008}-2") == NE
    assert compare(r"2^{1024}", r"2^{1024}+1") == NE
    assert compare(r"2^{1024}", str(2**1024)) == EQ


def test_overflow_is_unknown_not_wrong():
    # beyond the exact-integer limit: no silent wrap-around
    assert compare(r"2^{100000}", r"2^{100000}+1") == UNK


def test_12102_is_not_a_pair():
    assert compare("12102", "(12,102)") == NE
    assert compare("(12,102)", "12102") == NE
    assert compare("12,102", "12102") == EQ  # thousands separator outside brackets
    assert compare("(12,102)", "(12, 102)") == EQ


def test_comma_is_never_a_decimal_mark():
    assert compare("1,22", "1.22") == NE
    assert compare("2,16", "2, 16") == EQ


# ---- expressions in variables ---------------------------------------------------

@pytest.mark.parametrize(
    "pred, gold, want",
    [
        ("x^2+2x+1", "(x+1)^2", EQ),
        ("x^2+2x+1", "(x+1)^3", NE),
        (r"\frac{x}{7}+\frac{2}{7}", r"\frac{x+2}{7}", EQ),
        (r"\tan^2(y)+1", r"\sec^2(y)", EQ),
        (r"2 \sin b \cos a", r"\sin(a+b) - \sin(a-b)", EQ),
        ("3R^2", "3", NE),
        ("p - q", "-(q-p)", EQ),
        (r"\frac{\pi r}{h+r}", r"\frac{r\pi}{r+h}", EQ),
        ("(a+5)(b+2)", "ab+2a+5b+10", EQ),
        ("(a+5)(b+2)", "(+5)(b+2)", NE),
        ("x+2n+1", "x+1", NE),
        (r"\sqrt{x^2}", "x", NE),
        ("6r^2-4r-24", "2(3r^2-2r-12)", EQ),
        ("x_1 + x_2", "x_2 + x_1", EQ),
        ("x_1", "x_2", NE),
        (r"\alpha+\beta", r"\beta+\alpha", EQ),
    ],
)
def test_expressions(pred, gold, want):
    assert compare(pred, gold) == want


# ---- structures ----------------------------------------------------------------

@pytest.mark.parametrize(
    "pred, gold, want",
    [
        ("(1,2)", "(1, 2)", EQ),
        ("(2,1)", "(1,2)", NE),
        ("1, -2", "-2,1", EQ),
        ("3, 5, 7", "7,5,3", EQ),
        ("3, 5", "3,5,7", NE),
        (r"\{1,2,3\}", r"\{3,2,1\}", EQ),
        (r"\{1,2,2\}", r"\{1,2\}", EQ),
        ("(1,3)", "1,3", EQ),
        ("(3,1)", "1,3", NE),
        ("(3,4]", "(3,4]", EQ),
        ("(3,4]", "(3,4)", NE),
        ("[0,1)", "[0,1]", NE),
        (r"(-\infty, 0]", r"(-\infty,0]", EQ),
        (r"(-\infty,-2) \cup (2,\infty)", r"(2,\infty)\cup(-\infty,-2)", EQ),
        (r"(-\infty,-2) \cup (2,\infty)", r"(-\infty,-2] \cup (2,\infty)", NE),
        (r"[-1, -\tfrac12) \cup (-\tfrac12, 0]", r"[-1,-\frac{1}{2})\cup(-\frac{1}{2},0]", EQ),
        (r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}", r"\begin{bmatrix}1&2\\3&4\end{bmatrix}", EQ),
        (r"\begin{pmatrix} 1 & 2 \\ 3 & 5 \end{pmatrix}", r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", NE),
        (r"\left[\begin{array}{cc}1 & 2 \\ 3 & 4\end{array}\right]", r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", EQ),
        (r"\begin{pmatrix} 1/5 \\ -18/5 \end{pmatrix}", r"\begin{pmatrix} 0.2 \\ -3.6 \end{pmatrix}", EQ),
        (r"\begin{pmatrix} -7 \\ 16 \\ 5 \end{pmatrix}", "(-7, 16, 5)", EQ),
        (r"1 \pm \sqrt{19}", r"1+\sqrt{19}, 1-\sqrt{19}", EQ),
        (r"\pm 2021", r"\{-2021, 2021\}", EQ),
        (r"\pm 2021", "2021", NE),
        (r"\{1\pm\sqrt{5},-2\}", r"-2, 1+\sqrt5, 1-\sqrt5", EQ),
        ("(2, 2), (1, 3), (3, 3)", "(1,3),(3,3),(2,2)", EQ),
        ("6 and 8", "6, 8", EQ),
        (r"6 \text{ and } 8", "8,6", EQ),
        ("5 or 9", "9, 5", EQ),
    ],
)
def test_structures(pred, gold, want):
    assert compare(pred, gold) == want, (normalize_answer(pred), normalize_answer(gold))


@pytest.mark.parametrize(
    "pred, gold, want",
    [
        (r"\text{(B)}", "(B)", EQ),
        ("B", r"\text{(B)}", EQ),
        ("(b)", "B", EQ),
        ("(B) 12", "B", EQ),
        ("(B)+1", "(B)", NE),
        ("C", "B", NE),
        ("12", "B", NE),
        (r"\text{Evelyn}", "Evelyn", EQ),
        ("evelyn", r"\text{Evelyn}", EQ),
        (r"\text{ellipse}", "ellipse", EQ),
        ("circle", r"\text{ellipse}", NE),
        ("necessary but not sufficient", r"\text{Necessary but not sufficient}", EQ),
        ('\\"12 and 13\\"', "12, 13", EQ),
        ("no", "No", EQ),
    ],
)
def test_choices_and_text(pred, gold, want):
    assert compare(pred, gold) == want


@pytest.mark.parametrize(
    "pred, gold, want",
    [
        ("y = 2x + 3", "y=2x+3", EQ),
        ("2x - y + 3 = 0", "y = 2x + 3", EQ),
        ("y = 2x + 4", "2x - y + 3 = 0", NE),
        ("x^2/16 + y^2/12 = 1/4", "x^2/4 + y^2/3 = 1", EQ),
        (r"x \geq 5", "x >= 5", EQ),
        (r"5 \geq x", r"x \leq 5", EQ),
        (r"-x > -1", "x < 1", EQ),
        ("x > -1", "x < 1", NE),
        ("x > 5", r"(5, \infty)", EQ),
        (r"x \ge 5", r"(5, \infty)", NE),
        (r"-2 \le x \le 7", r"x \in [-2,7]", EQ),
        (r"-2 < x \le 7", r"[-2,7]", NE),
        (r"x = 5+5+1 = 11", "11", EQ),
        (r"x = \frac13 \approx 0.33", r"\frac13", EQ),
        ("(p,q)=(3,2)", "(3,2)", EQ),
        ("k = 45, n = 2", "n=2, k=45", EQ),
        ("7 = 11a+c", "11a+c", NE),
    ],
)
def test_relations(pred, gold, want):
    assert compare(pred, gold) == want


def test_base_subscript_numbers():
    assert compare("204_5", "204_{5}") == EQ
    assert compare("2516", "2516_8") == EQ  # base left implicit: same digits
    assert compare("1358", "2516_8") == NE  # the decimal value is not what was asked


# ---- switches -----------------------------------------------------------------

def test_strict_fractions():
    assert compare(r"\frac{2}{4}", r"\frac{1}{2}") == EQ
    assert compare(r"\frac{2}{4}", r"\frac{1}{2}", strict_fractions=True) == NE
    assert compare(r"\frac12", r"\frac{1}{2}", strict_fractions=True) == EQ
    assert compare(r"\frac{8}{2}", "4", strict_fractions=True) == NE
    assert compare("4.0", "4", strict_fractions=True) == EQ


def test_ordered_lists():
    assert compare("1, 2", "2, 1") == EQ
    assert compare("1, 2", "2, 1", ordered_lists=True) == NE
    assert compare("1, 2", "1, 2", ordered_lists=True) == EQ


def test_rtol():
    assert compare("2.6667", r"\frac83") == NE
    assert compare("2.6667", r"\frac83", rtol=1e-4) == EQ
    assert compare("0.333", r"\frac13", rtol=1e-2) == EQ
    with pytest.raises(TypeError, match="rtol"):
        compare("1", "1", rtol="big")
    with pytest.raises(ValueError, match="rtol"):
        compare("1", "1", rtol=-1.0)


def test_unknown_for_unsupported_math():
    assert compare(r"\sum_{k=0}^{n} k", r"\frac{n(n+1)}{2}") == UNK
    assert compare(r"\int_0^1 x dx", r"\frac12") == UNK


# ---- grade / grade_many / grade_responses ------------------------------------------

def test_grade_and_grade_many():
    assert grade(r"\boxed{1,000}", "1000")
    assert not grade(None, "1000")
    assert not grade("", "1000")
    out = grade_many(["1/2", None, "3", r"\sum k"], ["0.5", "1", "4", "5"])
    assert out.dtype == np.bool_ and out.tolist() == [True, False, False, False]
    res = grade_many(["1/2", r"\sum k"], ["0.5", "5"], details=True)
    assert res.verdict.tolist() == [EQ, UNK] and res.n_unknown == 1
    assert grade_many([], []).shape == (0,)


def test_grade_responses():
    responses = [r"so \boxed{4}", "I think 5", r"\boxed{1} wait \boxed{2}", ""]
    golds = ["4", "5", "2", "1"]
    assert grade_responses(responses, golds).tolist() == [True, False, True, False]
    assert grade_responses(responses, golds, extract="auto").tolist() == [True, True, True, False]
    assert grade_responses(responses, golds, extract="first_boxed").tolist() == [True, False, False, False]
    res = grade_responses(responses, golds, details=True)
    assert res.found.tolist() == [True, False, True, False]
    assert res.answers == ["4", None, "2", None]
    stats = o1pruner.reference_stats(np.array([10, 20, 30, 40]), res.correct, np.array([0, 0, 1, 1]))
    assert stats.accuracy.tolist() == [0.5, 0.5]


def test_bad_arguments():
    with pytest.raises(TypeError, match="prediction"):
        compare(1, "1")
    with pytest.raises(TypeError, match="gold"):
        compare("1", None)
    with pytest.raises(TypeError, match=r"predictions\[2\]"):
        grade_many(["1", "2", 3], ["1", "2", "3"])
    with pytest.raises(TypeError, match=r"golds\[0\]"):
        grade_many(["1"], [None])
    with pytest.raises(TypeError, match="golds"):
        grade_many(["1"], 5)
    with pytest.raises(ValueError, match="golds"):
        grade_many(["1", "2"], ["1"])
    with pytest.raises(TypeError, match=r"responses\[1\]|predictions\[1\]"):
        grade_responses(["1", b"2"], ["1", "2"])
    with pytest.raises(ValueError, match="extract"):
        grade_responses(["1"], ["1"], extract="nope")


# ---- bad input never crashes ---------------------------------------------------------

BAD_INPUTS = [
    "",
    " ",
    "{" * 100000,
    "}" * 100000,
    "{" * 100000 + "1" + "}" * 100000,
    r"\boxed{" * 20000 + "1" + "}" * 20000,
    "(" * 100000 + "1" + ")" * 100000,
    "-" * 100000 + "1",
    r"\frac" * 50000,
    r"\sqrt" * 50000 + "2",
    "2^" * 50000 + "2",
    "1+" * 200000 + "1",
    r"\left(" * 30000,
    "\ud800\udfff lone surrogates \udc00",
    "\x00\x01\x02 binary \xff",
    "9" * 100000,
    "1," * 100000,
    r"\begin{pmatrix}" * 1000,
    "x" * 100000,
    r"\\" * 50000,
    "$" * 1001,
    "é" * 1000 + "∞",
]


@pytest.mark.parametrize("i", range(len(BAD_INPUTS)))
def test_bad_input_gives_a_verdict(i):
    s = BAD_INPUTS[i]
    for a, b in ((s, "1"), ("1", s), (s, s)):
        assert compare(a, b) in (EQ, NE, UNK)
    extract_answer(s, "auto")
    extract_answer(s, "all_boxed")
    extract_answer(s, "last_math")
    normalize_answer(s)


def test_ten_megabytes():
    big = "x" * (10 << 20)
    assert compare(big, "1") in (NE, UNK)
    assert extract_answer(big + r"\boxed{3}") == "3"
    assert extract_answer(big, "auto") is None
    boxes = r"\boxed{" * (1 << 20)
    assert extract_answer(boxes) is None


def test_surrogates_roundtrip():
    s = "\ud800"
    assert compare(s, s) == EQ
    assert compare(s, "\udc00") == NE
    assert extract_answer(r"\boxed{" + s + "}") == s


# ---- threads and leaks -----------------------------------------------------------------

def _pairs(n=600):
    rng = np.random.default_rng(0)
    preds, golds = [], []
    forms = [
        ("{a}", "{a}"), (r"\frac{{{a}}}{{{b}}}", "{q}"), ("{a}x+{b}", "{b}+{a}x"),
        ("({a},{b})", "({a}, {b})"), (r"\sqrt{{{s}}}", "{r}"), ("{a}.{b}", "{a}.{b}0"),
    ]
    for i in range(n):
        a, b = int(rng.integers(1, 99)), int(rng.integers(1, 99))
        f = forms[i % len(forms)]
        kw = dict(a=a, b=b, q=f"{a / b:.6f}", s=a * a, r=a if i % 3 else a + 1)
        preds.append(f[0].format(**kw))
        golds.append(f[1].format(**kw))
    return preds, golds


def test_threads_same_results():
    preds, golds = _pairs()
    ref = grade_many(preds, golds, details=True).verdict
    out = [None] * 4

    def work(k):
        out[k] = grade_many(preds, golds, details=True).verdict

    ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for o in out:
        np.testing.assert_array_equal(o, ref)


def test_one_and_two_threads_agree():
    preds, golds = _pairs()
    n0 = o1pruner.get_num_threads()
    try:
        o1pruner.set_num_threads(1)
        one = grade_many(preds, golds, details=True).verdict
        r1 = grade_responses([rf"\boxed{{{p}}}" for p in preds], golds)
        o1pruner.set_num_threads(2)
        two = grade_many(preds, golds, details=True).verdict
        r2 = grade_responses([rf"\boxed{{{p}}}" for p in preds], golds)
    finally:
        o1pruner.set_num_threads(n0)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(r1, r2)


def test_leaks():
    preds, golds = _pairs(40)

    def calls():
        grade_many(preds, golds)
        grade_responses(preds, golds, extract="auto")
        extract_answers(preds, "all_boxed")
        compare("\ud800", "1")
        try:
            grade_many(preds + [3], golds + ["1"])
        except TypeError:
            pass
        try:
            grade_many(preds, golds[:-1])
        except ValueError:
            pass

    leak_check(calls, n=300, warmup=30)
