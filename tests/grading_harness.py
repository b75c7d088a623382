"""Helpers of the grading data tests: how answers are taken out of the
Math-Verify test strings (which hold whole solutions on both sides)."""

import re

from o1pruner.kernels.grading import extract_answer

_GLUE = re.compile(r"^(?:\s|,|;|\.|\\[()\[\]]|\\quad|\\qquad|\\text\{\s*(?:and|or)\s*\}|\band\b|\bor\b|\$)*$")


def _boxes(text):
    """(start, end) of every top-level \\boxed{...} in text."""
    out, i = [], 0
    while True:
        j = text.find("\\boxed", i)
        if j < 0:
            return out
        k = j + 6
        while k < len(text) and text[k] == " ":
            k += 1
        if k >= len(text) or text[k] != "{":
            i = j + 6
            continue
        depth = 0
        for m in range(k, len(text)):
            if text[m] == "{" and text[m - 1] != "\\":
                depth += 1
            elif text[m] == "}" and text[m - 1] != "\\":
                depth -= 1
                if depth == 0:
                    out.append((j, m + 1))
                    break
        else:
            return out
        i = out[-1][1] if out and out[-1][0] == j else j + 6


def _math_blocks(text):
    return [(m.start(), m.end()) for m in re.finditer(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", text, re.S)]


def _glued(text, spans):
    """Are the gaps between consecutive spans only separators ("and", ",", \\quad)?"""
    return all(_GLUE.match(text[a[1]:b[0]]) for a, b in zip(spans, spans[1:]))


def extract_side(text):
    """The answer of one side of a Math-Verify case: "the final answer is X",
    else the boxes (all of them when only separators stand between them),
    else "answer is", else the math blocks (all when glued), else the whole
    text."""
    if "final answer is" in text.lower():
        a = extract_answer(text, "answer_is")
        if a is not None:
            return a
    flat = text.replace("\\\\boxed", "\\boxed")
    boxes = _boxes(flat)
    if boxes:
        # the last run of boxes with only separators between them
        k = len(boxes) - 1
        while k > 0 and _glued(flat, boxes[k - 1 : k + 1]):
            k -= 1
        return extract_answer(flat[boxes[k][0] : boxes[-1][1]], "all_boxed")
    a = extract_answer(text, "answer_is")
    if a is not None:
        return a
    blocks = _math_blocks(text)
    if len(blocks) > 1 and _glued(text, blocks):
        return ", ".join(extract_answer(text[s:e], "last_math") or "" for s, e in blocks)
    a = extract_answer(text, "last_math")
    return text if a is None else a
