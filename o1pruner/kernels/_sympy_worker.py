"""Worker process of the sympy fallback (o1pruner._sympy_fallback).

Run as a script in a fresh interpreter (it imports sympy, never o1pruner or
the caller's __main__). Protocol on stdin/stdout, one JSON object per line:
the parent sends {"id": k, "pred": str, "gold": str} (normalised answers from
the C layer), the worker answers {"id": k, "r": 1 | 0 | -1} (equal, not equal,
could not parse). It prints "ready" once sympy is imported. The parent kills
it when an item takes too long: nothing here needs to be interruptible.
"""

import json
import os
import re
import sys


def _match(s, i, open_ch="{", close_ch="}"):
    """Index of the bracket closing s[i] (an open_ch), or -1."""
    depth = 0
    for k in range(i, len(s)):
        if s[k] == "\\":
            continue
        if s[k] == open_ch:
            depth += 1
        elif s[k] == close_ch:
            depth -= 1
            if depth == 0:
                return k
    return -1


def _arg(s, i):
    """A LaTeX macro argument at s[i:]: {group} or one character. Returns (text, end)."""
    while i < len(s) and s[i] == " ":
        i += 1
    if i >= len(s):
        raise ValueError("missing argument")
    if s[i] == "{":
        e = _match(s, i)
        if e < 0:
            raise ValueError("unbalanced braces")
        return s[i + 1 : e], e + 1
    if s[i] == "\\":
        m = re.match(r"\\[A-Za-z]+", s[i:])
        if m:
            return m.group(0), i + len(m.group(0))
    return s[i], i + 1


_FUNCS = {
    "sin": "sin", "cos": "cos", "tan": "tan", "cot": "cot", "sec": "sec", "csc": "csc",
    "arcsin": "asin", "arccos": "acos", "arctan": "atan", "sinh": "sinh", "cosh": "cosh",
    "tanh": "tanh", "ln": "log", "log": "log", "exp": "exp",
}


def latex_to_python(s):
    """Rewrite a (normalised) LaTeX expression as sympy-parsable text."""
    out = []
    i = 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            m = re.match(r"\\([A-Za-z]+)", s[i:])
            if not m:
                nxt = s[i + 1 : i + 2]
                out.append({"{": "(", "}": ")", ",": " ", "!": "", "|": "|"}.get(nxt, " "))
                i += 2
                continue
            name = m.group(1)
            i += len(m.group(0))
            if name in ("frac", "dfrac", "tfrac", "cfrac"):
                a, i = _arg(s, i)
                b, i = _arg(s, i)
                out.append(f"(({latex_to_python(a)})/({latex_to_python(b)}))")
            elif name == "sqrt":
                if i < len(s) and s[i] == "[":
                    e = _match(s, i, "[", "]")
                    n = s[i + 1 : e]
                    a, i = _arg(s, e + 1)
                    out.append(f"(({latex_to_python(a)})**(1/({latex_to_python(n)})))")
                else:
                    a, i = _arg(s, i)
                    out.append(f"sqrt({latex_to_python(a)})")
            elif name in ("binom", "dbinom", "tbinom"):
                a, i = _arg(s, i)
                b, i = _arg(s, i)
                out.append(f"binomial({latex_to_python(a)},{latex_to_python(b)})")
            elif name in ("cdot", "times", "ast"):
                out.append("*")
            elif name == "div":
                out.append("/")
            elif name == "pi":
                out.append(" pi ")
            elif name in ("infty", "infin"):
                out.append(" oo ")
            elif name in _FUNCS:
                out.append(f" {_FUNCS[name]} ")
            elif name in ("left", "right", "displaystyle", "mathrm", "text", "mathbf", "operatorname"):
                pass
            else:  # greek letters and other symbols become names
                out.append(f" {name} ")
            continue
        if c == "{":
            out.append("(")
        elif c == "}":
            out.append(")")
        elif c == "^":
            out.append("**")
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _split_top(s, seps=",;"):
    parts, depth, cur = [], 0, []
    i = 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s) and s[i + 1] in "{}":
            depth += 1 if s[i + 1] == "{" else -1
            cur.append(s[i : i + 2])
            i += 2
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c in seps and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def main():
    import sympy
    from sympy.parsing.sympy_parser import (
        convert_xor,
        factorial_notation,
        implicit_multiplication_application,
        parse_expr,
        standard_transformations,
    )

    transforms = standard_transformations + (implicit_multiplication_application, convert_xor, factorial_notation)
    local = {"e": sympy.E, "i": sympy.I, "pi": sympy.pi, "oo": sympy.oo, "E": sympy.Symbol("E"),
             "I": sympy.Symbol("I"), "N": sympy.Symbol("N"), "S": sympy.Symbol("S"), "Q": sympy.Symbol("Q")}

    def expr(s):
        s = s.strip()
        # strip a "name =" prefix, keep the last side of a chain
        if "=" in s:
            s = s.split("=")[-1]
        return parse_expr(latex_to_python(s), local_dict=local, transformations=transforms, evaluate=True)

    def equal_expr(a, b):
        x, y = expr(a), expr(b)
        if x == y:
            return True
        d = sympy.simplify(x - y)
        if d == 0:
            return True
        eq = x.equals(y)
        return bool(eq)

    def strip_brackets(s):
        s = s.strip()
        if len(s) >= 2 and s[0] in "([" and s[-1] in ")]":
            return s[0], s[1:-1], s[-1]
        if s.startswith("\\{") and s.endswith("\\}"):
            return "{", s[2:-2], "}"
        return "", s, ""

    def equal(a, b, depth=0):
        if depth > 5:
            raise ValueError("too deep")
        oa, ia, ca = strip_brackets(a)
        ob, ib, cb = strip_brackets(b)
        pa, pb = _split_top(ia), _split_top(ib)
        if len(pa) == 1 and len(pb) == 1:  # brackets around one element only group
            return equal_expr(a, b)
        if len(pa) != len(pb) or (oa and ob and (oa, ca) != (ob, cb)):
            return False
        if all(equal(x, y, depth + 1) for x, y in zip(pa, pb)):
            return True
        if oa == "(" or ob == "(" or oa == "[" or ob == "[":  # tuples and intervals are ordered
            return False
        left = list(pb)
        for x in pa:
            for k, y in enumerate(left):
                if equal(x, y, depth + 1):
                    del left[k]
                    break
            else:
                return False
        return True

    sys.stdout.write("ready\n")
    sys.stdout.flush()
    for line in sys.stdin:
        try:
            job = json.loads(line)
        except ValueError:
            continue
        try:
            r = 1 if equal(job["pred"], job["gold"]) else 0
        except Exception:  # noqa: BLE001 - any parse failure is "could not decide"
            r = -1
        sys.stdout.write(json.dumps({"id": job["id"], "r": r}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    try:
        import resource

        # a runaway simplification must not take the machine with it (not
        # under AddressSanitizer, whose shadow memory already spans terabytes
        # of address space: the sanitizer CI run preloads it into every child)
        if "libasan" not in os.environ.get("LD_PRELOAD", ""):
            resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
    except (ImportError, ValueError, OSError):
        pass
    main()
