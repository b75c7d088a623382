"""Deterministic stand-ins for a model, a tokenizer and a grader, used by the
pipeline tests (and by the subprocess the crash-resume test kills)."""

from __future__ import annotations

import re
import time

import numpy as np

BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


def last_boxed(text):
    m = BOXED.findall(text)
    return m[-1] if m else None


def exact_grader(responses, golds):
    """Correct when the last \\boxed{} content equals the gold string."""
    return [last_boxed(t) == g for t, g in zip(responses, golds)]


def answer_grader(answers, golds):
    return [str(a).strip() == str(g).strip() for a, g in zip(answers, golds)]


class WordTokenizer:
    """encode(text) -> one id per whitespace-separated word."""

    def encode(self, text):
        return [hash(w) % 1000 for w in text.split()]


class HFLikeTokenizer:
    """A Hugging Face-style tokenizer: __call__(text)["input_ids"]."""

    def __call__(self, text):
        return {"input_ids": [ord(c) for c in text], "attention_mask": [1] * len(text)}


class EmptyTokenizer:
    def encode(self, text):
        return []


def make_problems(n, with_difficulty=False):
    out = []
    for i in range(n):
        p = {"problem": f"What is {i} + {2 * i + 1}?", "ground_truth_answer": str(3 * i + 1)}
        if with_difficulty:
            p["difficulty"] = 1 + i % 3
        out.append(p)
    return out


def _numbers(prompt):
    a, b = map(int, re.findall(r"\d+", prompt)[:2])
    return a, b


def fake_generate(prompts, seed=0, delay=0.0, p_correct=0.7, verbose_words=(2, 12)):
    """A seeded 'model': some thinking words, then a boxed answer that is
    right with probability p_correct. Returns dicts with text and token_ids."""
    if delay:
        time.sleep(delay)
    rng = np.random.default_rng(seed)
    out = []
    for p in prompts:
        a, b = _numbers(p)
        n = int(rng.integers(*verbose_words))
        ans = a + b if rng.random() < p_correct else a + b + 1
        text = " ".join(["hmm"] * n) + f" so \\boxed{{{ans}}}"
        out.append({"text": text, "token_ids": list(range(n + 2))})
    return out


def greedy_generate(prompts, words=5):
    """Deterministic, always correct, `words` thinking words."""
    out = []
    for p in prompts:
        a, b = _numbers(p)
        out.append(" ".join(["step"] * words) + f" \\boxed{{{a + b}}}")
    return out


class FakeModel:
    """An object with .generate(prompts, temperature=..., seed=...) that
    records the temperature it was given."""

    def __init__(self):
        self.temperatures = []

    def generate(self, prompts, temperature=1.0, seed=0):
        self.temperatures.append(temperature)
        return fake_generate(prompts, seed=seed, p_correct=1.0 if temperature == 0 else 0.5)
