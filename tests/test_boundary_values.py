"""Issue 13, the wrong results and unclear errors at the C boundary: bool masks
whose bytes are not 0/1, float formatting in error messages, the mean/std of
huge or tiny weights, the backward at the largest temperatures, the grader's
length limit, and exceptions that must not be swallowed."""

import math
import pathlib
import re
from fractions import Fraction

import numpy as np
import pytest

import o1pruner
from o1pruner import _core
from o1pruner.kernels import slow as ref
from o1pruner.kernels.grading import normalize_answer

from helpers import assert_close

ROOT = pathlib.Path(__file__).resolve().parents[1]


# ---- bool masks whose bytes are not 0/1 -------------------------------------------
# A uint8 array viewed as bool keeps its bytes: NumPy reads any nonzero byte as
# True (np.count_nonzero, indexing, astype), so must every kernel.

def odd_bool(mask01, rng, layout):
    """`mask01` (0/1) as a bool array whose True bytes are random values in
    [1, 255], C-contiguous or a strided view."""
    m = np.asarray(mask01, dtype=bool)
    raw = np.where(m, rng.integers(1, 256, m.shape), 0).astype(np.uint8)
    if layout == "C":
        return raw.view(bool)
    big = np.zeros(m.shape[:-1] + (2 * m.shape[-1],), np.uint8)
    big[..., ::2] = raw
    return big.view(bool)[..., ::2]


def test_issue_example_sequence_logprobs():
    m = np.array([[1, 2, 0, 0]], np.uint8).view(bool)
    x = np.array([[-1, -3, 0, 0]], np.float32)
    assert o1pruner.sequence_logprobs(x, m, "mean").tolist() == [-2.0]
    assert ref.sequence_logprobs(x, m, "mean").tolist() == [-2.0]
    res = o1pruner.ppo_clip_loss(x, x, np.array([1.0]), m, ratio="token")
    assert res.stats.count == 2
    assert res.grad.tolist() == [[-0.5, -0.5, 0.0, 0.0]]


@pytest.mark.parametrize("layout", ["C", "strided"])
@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_sequence_logprobs_odd_bool_mask(rng, layout, reduce):
    B, T = 6, 37
    m01 = rng.random((B, T)) < 0.6
    m01[2] = False  # a padding row
    x = rng.normal(-2, 1, (B, T)).astype(np.float32)
    m = odd_bool(m01, rng, layout)
    assert (m.view(np.uint8) > 1).any()
    want = o1pruner.sequence_logprobs(x, m01, reduce)
    assert o1pruner.sequence_logprobs(x, m, reduce).tolist() == want.tolist()
    assert_close(want, ref.sequence_logprobs(x, m, reduce), rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(B)
    got = o1pruner.sequence_logprobs_backward(g, m, reduce)
    assert got.tolist() == o1pruner.sequence_logprobs_backward(g, m01, reduce).tolist()
    assert_close(got, ref.sequence_logprobs_backward(g, m01, reduce), rtol=1e-6, atol=1e-7)


PPO_MODES = [("sequence_mean", "mean"), ("sequence_mean", "sum"), ("token", "grpo"), ("token", "bnpo"),
             ("token", "dr_grpo"), ("token", "seq-mean-token-sum")]


@pytest.mark.parametrize("layout", ["C", "strided"])
@pytest.mark.parametrize("ratio,aggregate", PPO_MODES)
def test_ppo_clip_loss_odd_bool_mask(rng, layout, ratio, aggregate):
    B, T = 5, 29
    m01 = rng.random((B, T)) < 0.7
    m01[3] = False
    lp = rng.normal(-1.5, 0.5, (B, T)).astype(np.float32)
    rf = (lp + rng.normal(0, 0.3, (B, T))).astype(np.float32)
    adv = rng.standard_normal(B)
    m = odd_bool(m01, rng, layout)
    got = o1pruner.ppo_clip_loss(lp, rf, adv, m, ratio=ratio, aggregate=aggregate)
    want = o1pruner.ppo_clip_loss(lp, rf, adv, m01, ratio=ratio, aggregate=aggregate)
    assert got.loss == want.loss
    assert got.grad.tolist() == want.grad.tolist()
    assert got.stats == want.stats
    assert got.stats.count == (int(m01.sum()) if ratio == "token" else int(m01.any(1).sum()))
    rl, rg, rs = ref.ppo_clip_loss(lp, rf, adv, m01, ratio=ratio, aggregate=aggregate)
    assert_close(got.loss, rl, rtol=1e-5, atol=1e-6)
    assert_close(got.grad, rg, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("layout", ["C", "strided"])
def test_model_attention_mask_odd_bool(layout, rng):
    from o1pruner.models import TinyLM, TinyLMConfig

    cfg = TinyLMConfig(vocab_size=11, hidden_size=8, intermediate_size=12, num_hidden_layers=1,
                       num_attention_heads=2, max_position_embeddings=16)
    model = TinyLM(cfg, seed=3)
    ids = rng.integers(0, 11, (3, 7))
    m01 = np.zeros((3, 7), bool)
    m01[0, :7] = m01[1, :4] = m01[2, :1] = True
    m = odd_bool(m01, rng, layout)
    want = model.logprobs(ids, m01)
    assert model.logprobs(ids, m).tolist() == want.tolist()
    model.zero_grad()
    model.forward_backward(ids, m01, None, np.ones((3, 7), np.float32))
    g_want = model.flat_gradients.copy()
    model.zero_grad()
    model.forward_backward(ids, m, None, np.ones((3, 7), np.float32))
    assert model.flat_gradients.tolist() == g_want.tolist()


# ---- error messages that format floats ---------------------------------------------
# PyErr_Format has no %g/%f/%e: on Python 3.11 the message kept a literal
# "%g", on 3.12+ the call raised SystemError instead of the ValueError.

def test_grader_rtol_message():
    for call in (lambda: _core.grader_compare(["1"], ["1"], None, 2.0),
                 lambda: o1pruner.grading.compare("1", "1", rtol=2.0)):
        with pytest.raises(ValueError) as e:
            call()
        assert str(e.value) == "rtol: must be in [0, 1), got 2.0"
    with pytest.raises(ValueError, match=r"rtol: must be in \[0, 1\), got -0.5$"):
        _core.grader_compare(["1"], ["1"], rtol=-0.5)


@pytest.mark.parametrize("case", ["advantages", "lse", "eps_low", "dual_clip", "rtol"])
def test_messages_with_numbers_are_formatted(case, rng):
    x = rng.standard_normal((2, 5)).astype(np.float32)
    calls = {
        "advantages": (lambda: o1pruner.ppo_clip_loss(x, x, [3e39, 0.0], np.ones((2, 5)), ratio="token"),
                       "advantages: 3e+39 at index 0"),
        "lse": (lambda: o1pruner.token_logprobs_backward(x, [0, 1], [7.25, 7.25], [1.0, 1.0]),
                "lse: row 0: lse = 7.25 does not match"),
        "eps_low": (lambda: o1pruner.ppo_clip_loss(x, x, [1.0, 0.0], np.ones((2, 5)), eps_low=1.5),
                    "eps_low: must lie in (0, 1), got 1.5"),
        "dual_clip": (lambda: o1pruner.ppo_clip_loss(x, x, [1.0, 0.0], np.ones((2, 5)), dual_clip=0.5),
                      "dual_clip: must be > 1 or None"),
        "rtol": (lambda: _core.grader_compare(["1"], ["1"], rtol=float("nan")), "got nan"),
    }
    call, text = calls[case]
    with pytest.raises(ValueError) as e:
        call()
    assert text in str(e.value)
    assert "%" not in str(e.value)


# The format functions of CPython's C API and the conversions they support on
# every Python the package runs on (>= 3.9): no %g, %f, %e, no flags.
_FORMAT_CALLS = r"\b(PyErr_Format|PyErr_FormatV|PyUnicode_FromFormat|PyUnicode_FromFormatV|PyErr_WarnFormat|PyBytes_FromFormat)\s*\("
_ALLOWED = {"c", "d", "u", "i", "x", "ld", "li", "lu", "lld", "lli", "llu", "zd", "zi", "zu", "p",
            "s", "U", "V", "S", "R", "A"}
_SPEC = re.compile(r"%(?P<flags>[-+#0 ]*)(?P<width>\d+|\*)?(?:\.(?P<prec>\d+|\*))?"
                   r"(?P<len>hh|h|ll|l|z|j|t|L|q)?(?P<conv>.)")


def _format_calls(text):
    """(function, line, format string) of every format call in C source text:
    the call's arguments up to the matching parenthesis, the format being the
    concatenation of its string literals."""
    for m in re.finditer(_FORMAT_CALLS, text):
        i, depth = m.end(), 1
        while depth:
            ch = text[i]
            if ch == '"':
                i += 1
                while text[i] != '"':
                    i += 2 if text[i] == "\\" else 1
            elif ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
            i += 1
        lits = re.findall(r'"((?:[^"\\]|\\.)*)"', text[m.end():i - 1])
        yield m.group(1), text.count("\n", 0, m.start()) + 1, "".join(lits) if lits else None


def _bad_specs(fmt):
    bad = []
    for s in _SPEC.finditer(fmt.replace("%%", "")):
        spec = (s.group("len") or "") + s.group("conv")
        if spec not in _ALLOWED or s.group("flags") or (s.group("width") and s.group("conv") not in "sdiuxUVSRA"):
            bad.append(s.group(0))
    return bad


def test_format_scanner_finds_unsupported_conversions():
    src = 'x; PyErr_Format(PyExc_ValueError,\n "a %s: got %g" "(%.3f, %zd)", f(a, "b"), y);\n' \
          'PyUnicode_FromFormat("%R %lld %5e", o);'
    found = [(fn, line, _bad_specs(fmt)) for fn, line, fmt in _format_calls(src)]
    assert found == [("PyErr_Format", 1, ["%g", "%.3f"]), ("PyUnicode_FromFormat", 3, ["%5e"])]


def test_no_unsupported_format_in_csrc():
    files = sorted((ROOT / "csrc").rglob("*.[ch]"))
    assert files, "csrc/ not found"
    problems, n = [], 0
    for p in files:
        for fn, line, fmt in _format_calls(p.read_text()):
            n += 1
            if fmt is None:
                problems.append(f"{p.name}:{line}: {fn} without a literal format")
            elif _bad_specs(fmt):
                problems.append(f"{p.name}:{line}: {fn} uses {_bad_specs(fmt)}: {fmt[:60]!r}")
    assert n > 50  # the scanner does see the calls
    assert not problems, "\n".join(problems)


# ---- harmonize_weights: mean and std of huge and tiny weights ----------------------

def exact_z(x):
    """z-scores (ddof 0) from exact rational mean and variance."""
    fx = [Fraction(v) for v in x]
    m = sum(fx) / len(fx)
    var = sum((v - m) ** 2 for v in fx) / len(fx)
    if var == 0:
        return [0.0] * len(fx)
    return [math.copysign(math.sqrt(float((v - m) ** 2 / var)), 1 if v > m else -1) if v != m else 0.0
            for v in fx]


HARD_SETS = [
    [1.7e308, 1.7e308, 1.0],            # the sum overflows
    [-1.7e308, 1.7e308, 0.0, 1e308],    # so do the squared deviations
    [1e-300, 2e-300, 3e-300],           # the squared deviations underflow to 0
    [1e-160, 2e-160, 3e-160],           # ... to subnormals
    [5e-324, 0.0, 1e-323],              # subnormal inputs
    [1.7e308, -3.0, 2.5, 4.0],
]


@pytest.mark.parametrize("x", HARD_SETS)
def test_harmonize_weights_extreme_values(x):
    want = exact_z(x)
    got = o1pruner.harmonize_weights(x, clip=None)
    assert np.isfinite(got).all()
    assert_close(got, want, rtol=1e-12, atol=1e-12)
    with np.errstate(all="raise"):  # the twin computes without overflow too
        twin = ref.harmonize_weights(x, clip=None)
    assert_close(twin, want, rtol=1e-12, atol=1e-12)


def test_harmonize_weights_extreme_values_per_group():
    x = [1.7e308, 1.7e308, 1.0, 1e-300, 3e-300, -1.7e308, 1.7e308]
    group = [0, 0, 0, 1, 1, 2, 2]
    want = exact_z(x[:3]) + exact_z(x[3:5]) + exact_z(x[5:])
    got = o1pruner.harmonize_weights(x, clip=None, normalize="group", group=group)
    assert_close(got, want, rtol=1e-12, atol=1e-12)
    with np.errstate(all="raise"):
        twin = ref.harmonize_weights(x, clip=None, normalize="group", group=group)
    assert_close(twin, want, rtol=1e-12, atol=1e-12)


def test_harmonize_weights_ordinary_values_unchanged(rng):
    # scaling by a power of two is exact: ordinary weights are bit for bit
    # those of the plain formula
    x = rng.normal(0.3, 2.0, 1000)
    xs = np.clip(x, -2.0, 4.0)
    want = (xs - xs.mean()) / xs.std()
    assert_close(o1pruner.harmonize_weights(x), want, rtol=1e-13, atol=1e-13)


def test_reference_stats_mean_of_huge_lengths():
    # the same pattern: the per-problem sum of lengths overflowed to inf
    lengths = [1.7e308, 1.7e308, 1.0, 3.0, 1.5e308, 1e308, 5e307]
    group = [0, 0, 1, 1, 2, 2, 2]
    want = [1.7e308, 2.0, float(sum(Fraction(v) for v in lengths[4:]) / 3)]
    for stats in (o1pruner.reference_stats(lengths, [1, 0, 1, 1, 0, 0, 1], group),
                  ref.reference_stats(lengths, [1, 0, 1, 1, 0, 0, 1], group)):
        assert_close(stats[1], want, rtol=1e-15, atol=0)
    rewards = o1pruner.length_harmonizing_reward(lengths[:2], [1, 0], [1.7e308] * 2, [0.5] * 2, 1.0)
    assert rewards.tolist() == [0.5, -0.5]


# ---- token_logprobs_backward at the largest temperatures -----------------------------
# 1/temperature must be a normal float32, so temperatures up to ~8.5e37 are
# accepted; there lse * temperature (the backward's log-sum-exp in logit
# units) overflows float32 for any vocabulary above ~1000.

@pytest.mark.parametrize("temperature", [5e37, 8e37, 1e37])
@pytest.mark.parametrize("with_entropy", [False, True])
def test_backward_accepts_the_forwards_lse_at_huge_temperature(rng, temperature, with_entropy):
    N, V = 4, 1000
    x = rng.standard_normal((N, V)).astype(np.float32) * 10
    t = rng.integers(0, V, N)
    t[2] = -100
    fw = o1pruner.token_logprobs(x, t, temperature=temperature)
    gl = rng.standard_normal(N).astype(np.float32)
    ge = rng.standard_normal(N).astype(np.float32) if with_entropy else None
    got = o1pruner.token_logprobs_backward(x, t, fw.lse, gl, ge, temperature=temperature)
    want = ref.token_logprobs_backward(x, t, gl, ge, temperature=temperature)
    # the gradients are ~1/temperature (float32 subnormals off the target):
    # compare them in units of 1/temperature
    assert_close(got.astype(np.float64) * temperature, want * temperature, rtol=1e-3, atol=2e-3)
    # a wrong lse is still caught at this temperature
    with pytest.raises(ValueError, match="lse: row 0"):
        o1pruner.token_logprobs_backward(x, t, fw.lse + 1.0, gl, ge, temperature=temperature)


def test_backward_ordinary_temperature_bitwise_unchanged(rng):
    # the rescaling is only taken where lse * temperature overflows
    x = rng.standard_normal((16, 300)).astype(np.float32) * 3
    t = rng.integers(0, 300, 16)
    for temperature in (0.7, 1.0, 3.0):
        fw = o1pruner.token_logprobs(x, t, temperature=temperature)
        g = o1pruner.token_logprobs_backward(x, t, fw.lse, np.ones(16), np.ones(16), temperature=temperature)
        want = ref.token_logprobs_backward(x, t, np.ones(16), np.ones(16), temperature=temperature)
        assert_close(g, want, rtol=1e-4, atol=1e-6)


# ---- grader_normalize: the length limit ------------------------------------------------

LIMIT = (32 << 20) - 64  # GRADER_NORMALIZE_MAX_LEN (csrc/kernels/grader.h)


def test_grader_normalize_limit_is_named():
    src = (ROOT / "csrc" / "kernels" / "grader.h").read_text()
    assert "#define GRADER_NORMALIZE_MAX_LEN (((o1p_int)32 << 20) - 64)" in src
    for n in (LIMIT + 1, 100_000_000):
        with pytest.raises(ValueError) as e:
            normalize_answer("7" * n)
        msg = str(e.value)
        assert msg.startswith(f"answer: {n} bytes of UTF-8 is longer than the grader's limit of {LIMIT} bytes")
    # the limit counts UTF-8 bytes, not characters
    with pytest.raises(ValueError, match=f"answer: {3 * (LIMIT // 3 + 1)} bytes"):
        _core.grader_normalize("\u20ac" * (LIMIT // 3 + 1))


def test_grader_normalize_at_the_limit_works():
    s = "8" * LIMIT
    assert normalize_answer(s) == s
    assert normalize_answer("  $\\boxed{" + "9" * (LIMIT - 20) + "}$ ") == "9" * (LIMIT - 20)


# ---- only the expected exception is replaced -----------------------------------------

class Raises:
    """A number-like object whose conversions raise `exc`."""

    def __init__(self, exc):
        self.exc = exc

    def __index__(self):
        raise self.exc

    def __float__(self):
        raise self.exc

    __int__ = __index__


class BadSeq:
    """A sequence whose items cannot be read."""

    def __init__(self, exc):
        self.exc = exc

    def __len__(self):
        return 2

    def __getitem__(self, i):
        raise self.exc


@pytest.mark.parametrize("exc", [KeyboardInterrupt, MemoryError, RuntimeError])
def test_exceptions_of_the_argument_go_through(exc):
    calls = [
        lambda: _core.grader_extract(["\\boxed{1}"], [Raises(exc())]),
        lambda: _core.grader_extract(BadSeq(exc()), [0]),
        lambda: _core.grader_compare(BadSeq(exc()), ["1", "2"]),
        lambda: _core.grader_compare(["1", "2"], BadSeq(exc())),
        lambda: _core.grader_compare(["1"], ["1"], BadSeq(exc())),
        lambda: _core.harmonize_weights([1.0, 2.0], (Raises(exc()), 1.0)),
        lambda: _core.harmonize_weights([1.0, 2.0], [-1.0, Raises(exc())]),
    ]
    for i, call in enumerate(calls):
        with pytest.raises(exc):
            call()


def test_expected_conversion_errors_are_still_explained():
    with pytest.raises(ValueError, match="modes: entry 0 is not a valid mode id"):
        _core.grader_extract(["x"], ["a"])
    with pytest.raises(ValueError, match="modes: entry 1 is not a valid mode id"):
        _core.grader_extract(["x"], [0, 2**70])
    with pytest.raises(TypeError, match="modes: expected a sequence of int"):
        _core.grader_compare(["1"], ["1"], 5)
    with pytest.raises(TypeError, match="texts: expected a sequence of str"):
        _core.grader_extract(5, [0])
    with pytest.raises(TypeError, match="clip: low and high must be real numbers"):
        _core.harmonize_weights([1.0, 2.0], ("a", 1.0))
    # lone surrogates are kept (the UnicodeEncodeError is the expected one)
    assert _core.grader_extract(["\\boxed{\ud800}"], [0]) == ["\ud800"]
    assert _core.grader_normalize("\ud800") == "\ud800"
