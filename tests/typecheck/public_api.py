"""Uses the public API the way the README does, with the types a user's
checker should infer. Not run: type-checked by tests/test_typing.py (mypy)."""

from __future__ import annotations

from typing import Dict, List

import numpy as np

import o1pruner
from o1pruner import io
from o1pruner.train import PPOConfig, TrainConfig


def rewards() -> np.ndarray:
    lengths = np.array([100.0, 60.0, 80.0, 40.0])
    correct = np.array([True, True, False, True])
    stats: o1pruner.ReferenceStats = o1pruner.reference_stats(lengths, correct, np.array([0, 0, 1, 1]))
    lbar, abar = stats.per_sample()
    r: np.ndarray = o1pruner.length_harmonizing_reward(lengths, correct, lbar, abar, lam=2.0)
    return o1pruner.harmonize_weights(r, clip=(-2.0, 4.0), normalize="dataset")


def objective(logp: np.ndarray, ref: np.ndarray, weight: np.ndarray, mask: np.ndarray) -> float:
    spec = PPOConfig(eps_low=0.2, eps_high=0.28, ratio="token", aggregate="grpo")
    res: o1pruner.PPOClipResult = o1pruner.ppo_clip_loss(logp, ref, weight, mask, **spec.kwargs())
    part = spec.loss(logp[:2], ref[:2], weight[:2], mask[:2], global_batch_size=4, batch_num_tokens=int(mask.sum()))
    grad: np.ndarray = res.grad + part.grad.sum()
    stats: o1pruner.PPOStats = res.stats
    return res.loss + stats.clip_fraction + float(grad.sum())


def token_logprobs(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    out: o1pruner.TokenLogprobs = o1pruner.token_logprobs(logits, targets, temperature=0.7)
    g: np.ndarray = o1pruner.token_logprobs_backward(logits, targets, out.lse, np.ones_like(out.logp))
    return out.logp + g.sum()


def grading() -> List[bool]:
    verdict: o1pruner.Verdict = o1pruner.compare_answers("\\frac{1}{2}", "0.5")
    ok: List[bool] = list(o1pruner.grade_responses(["the answer is \\boxed{4}"], ["4"]))
    return ok + [verdict == o1pruner.Verdict.EQUAL]


def pipeline(path: str) -> Dict[str, np.ndarray]:
    ds: o1pruner.WeightedDataset = o1pruner.build_dataset(path, lam=2.0, samples_per_problem=2)
    io.write_jsonl(path + ".out.jsonl", ds.records)
    template = o1pruner.PromptTemplate(system=io.PUBLIC_SYSTEM_PROMPT)
    assert template.render("1+1") is not None
    return ds.arrays()


def config() -> TrainConfig:
    cfg = TrainConfig(lr=3e-4, epochs=2, eps_low=0.05)
    spec: PPOConfig = cfg.ppo
    return TrainConfig.from_dict({**cfg.to_dict(), **spec.to_dict()})
