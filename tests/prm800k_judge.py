"""A sympy-based judge in the style of the PRM800K grader, written for the
comparison in tests/test_grading_data.py (it is not part of o1pruner).

It follows that grader's algorithm: first the Hendrycks MATH string
normaliser; failing that a second normaliser, a tuple split, and per element:
fractions of integers must match as written, an integer needs an integer,
everything else is equal when sympy simplifies the difference to zero (with
the same guard against expressions that could take sympy too long). It is a
faithful re-implementation of the behaviour, including the known weaknesses
(no tolerance, sets compared in order, "12,102" read as 12102).
"""

import re

import sympy
from sympy.parsing.sympy_parser import (
    implicit_multiplication_application,
    parse_expr,
    standard_transformations,
)


# ---- the Hendrycks MATH normaliser ----------------------------------------------

def _fix_fracs(s):
    parts = s.split("\\frac")
    out = parts[0]
    for p in parts[1:]:
        out += "\\frac"
        if p.startswith("{") or len(p) < 2:
            out += p
            continue
        a, b, rest = p[0], p[1], p[2:]
        if b == "{":
            out += "{" + a + "}" + b + rest
        else:
            out += "{" + a + "}{" + b + "}" + rest
    return out


def _fix_a_slash_b(s):
    m = re.fullmatch(r"(-?\d+)/(\d+)", s)
    return "\\frac{" + m.group(1) + "}{" + m.group(2) + "}" if m else s


def _fix_sqrt(s):
    return re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", s)


def hendrycks_normalize(s):
    s = s.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    s = s.replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("\\left", "").replace("\\right", "")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "")
    s = s.replace("\\$", "")
    if "\\text{ " in s:  # units after "\text{ "
        s = s.split("\\text{ ")[0]
    s = s.replace("\\%", "").replace("%", "")
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    sides = s.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:
        s = sides[1]
    s = _fix_sqrt(s)
    s = s.replace(" ", "")
    s = _fix_fracs(s)
    if s == "0.5":
        s = "\\frac{1}{2}"
    return _fix_a_slash_b(s)


# ---- the second normaliser and sympy ----------------------------------------------

_UNITS = ["degree", "cm", "centimeter", "meter", "mile", "second", "minute", "hour", "day", "week",
          "month", "year", "foot", "feet", "inch", "yard"]


def _strip_commas(s):
    prev = None
    while prev != s:
        prev = s
        s = re.sub(r"(\d),(\d\d\d)($|\D)", r"\1\2\3", s)
    return s


def _is_float(s):
    try:
        float(s)
        return True
    except ValueError:
        return False


def _str_is_int(s):
    s = _strip_commas(s)
    try:
        return abs(float(s) - int(round(float(s)))) <= 1e-7
    except (ValueError, OverflowError):
        return False


def _latex_to_text(s):
    """LaTeX to plain infix text: \\frac{a}{b} -> (a)/(b), \\sqrt{x} -> sqrt(x)."""
    for _ in range(20):
        m = re.search(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", s)
        if not m:
            break
        s = s[: m.start()] + f"({m.group(1)})/({m.group(2)})" + s[m.end():]
    for _ in range(20):
        m = re.search(r"\\sqrt\{([^{}]*)\}", s)
        if not m:
            break
        s = s[: m.start()] + f"sqrt({m.group(1)})" + s[m.end():]
    s = s.replace("\\pi", "pi").replace("\\cdot", "*").replace("\\times", "*")
    s = s.replace("\\infty", "oo").replace("\\", "")
    return s


def second_normalize(s):
    m = re.fullmatch(r"\\text\{(.+?)\}", s)
    if m:
        s = m.group(1)
    s = s.replace("\\%", "%").replace("\\$", "$").replace("$", "").replace("%", "")
    s = s.replace(" or ", " , ").replace(" and ", " , ")
    s = s.replace("million", "*10^6").replace("billion", "*10^9").replace("trillion", "*10^12")
    for u in _UNITS:
        s = re.sub(f"{u}(es)?(s)? *(\\^[0-9]+)?", "", s)
    s = re.sub(r"\^ *\\circ", "", s)
    if s and s[0] == "{" and s[-1] == "}":
        s = s[1:-1]
    s = re.sub(r",\\! *", "", s)
    if _is_float(s) and _str_is_int(s):
        s = str(int(round(float(s))))
    if "\\" in s:  # (PRM800K's LaTeX-to-text step reads \frac59 and \sqrt3 shorthands)
        s = _latex_to_text(_fix_fracs(_fix_sqrt(re.sub(r"\\(frac|sqrt) +", r"\\\1", s))))
    s = re.sub(r"- *", "-", s)
    s = re.sub(r"([0-9]) +([0-9]+/[0-9]+)", r"\1+\2", s)  # mixed numbers
    s = s.replace(" ", "").replace("{", "").replace("}", "").lower()
    if _str_is_int(s):
        s = str(int(round(float(_strip_commas(s)))))
    return s


def _split_tuple(s):
    s = _strip_commas(s)
    if len(s) > 2 and s[0] in "([" and s[-1] in ")]" and all(ch not in s[1:-1] for ch in "()[]"):
        return [e.strip() for e in s[1:-1].split(",")]
    return [s]


def _is_frac(s):
    return bool(re.fullmatch(r"-?\(*\d+\)*/\(*\d+\)*", s))


def _allow_eval(s):
    # the same spirit as PRM800K's guard: few unknown letters, no big powers
    letters = set(re.findall(r"[a-z]", s.replace("sqrt", "").replace("pi", "")))
    return len(letters) <= 2 and "^" not in s and "**" not in s


def _sympy_equal(a, b):
    try:
        if not (_allow_eval(a) and _allow_eval(b)):
            return False
        t = standard_transformations + (implicit_multiplication_application,)
        x = parse_expr(a.replace("^", "**"), transformations=t)
        y = parse_expr(b.replace("^", "**"), transformations=t)
        return sympy.simplify(x - y) == 0
    except Exception:  # noqa: BLE001 - anything that does not parse is not equal
        return False


def prm800k_grade(given, gold):
    if given is None:
        return False
    if hendrycks_normalize(gold) == hendrycks_normalize(given):
        return True
    g, p = second_normalize(gold), second_normalize(given)
    if g == p:
        return True
    if not p:
        return False
    ge, pe = _split_tuple(g), _split_tuple(p)
    if len(ge) > 1 and (g[0] != p[0] or g[-1] != p[-1]):
        return False
    if len(ge) != len(pe):
        return False
    for a, b in zip(ge, pe):
        if _is_frac(a) and _is_frac(b):
            ok = a == b
        elif _str_is_int(a) != _str_is_int(b):
            ok = False
        else:
            ok = _sympy_equal(a, b)
        if not ok:
            return False
    return True
