"""Tiny models and training records for the trainer and demo tests (and
for the subprocess the checkpoint-kill test runs): seconds, not minutes."""

from __future__ import annotations

import numpy as np

from o1pruner.models import TinyLM, TinyLMConfig
from o1pruner.tasks import ArithmeticTask, CharTokenizer

TOK = CharTokenizer()


def tiny_model(seed: int = 0, context: int = 256) -> TinyLM:
    cfg = TinyLMConfig(vocab_size=TOK.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=2, max_position_embeddings=context, bos_token_id=TOK.bos_token_id,
                       eos_token_id=TOK.eos_token_id, pad_token_id=TOK.pad_token_id)
    return TinyLM(cfg, seed=seed)


def tiny_samples(n_problems: int = 6, k: int = 4, seed: int = 0):
    """Pre-sampled-like records of the built-in task (long-thought solutions
    with their true correctness and character lengths)."""
    task = ArithmeticTask()
    rng = np.random.default_rng(seed)
    out = []
    for i, p in enumerate(task.problems(n_problems, split="train", seed=seed, levels=[1, 3])):
        for j in range(k):
            sol = task.long_solution(p, rng)
            out.append({"problem_id": i, "sample_index": j, "problem": p.expr, "ground_truth_answer": str(p.answer),
                        "difficulty": p.level, "prompt": f"Q:{p.expr}\n", "solution": sol.text,
                        "correct": bool(sol.correct), "length": len(sol.text)})
    return out


def tiny_records(n: int = 12, seed: int = 0):
    """Training records with random weights."""
    rng = np.random.default_rng(seed)
    recs = tiny_samples(n_problems=(n + 1) // 2, k=2, seed=seed)[:n]
    for r in recs:
        r["weight"] = float(rng.normal())
    return recs


def small_reference(n_problems: int = 400, epochs: int = 4, seed: int = 0) -> TinyLM:
    """A tiny model SFT-trained for a few seconds on the task's long-thought
    solutions: it writes solution-shaped text (checks, a boxed answer), so the
    demo, the CLI and the notebooks run end to end without the shipped
    reference; its accuracy is low and not meant to show anything."""
    from o1pruner.train import TrainConfig, Trainer

    task = ArithmeticTask()
    probs = task.problems(n_problems, split="train", seed=seed)
    recs = [{"prompt": p, "solution": s} for p, s in task.sft_examples(probs, seed=seed)]
    cfg = TinyLMConfig(vocab_size=TOK.vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=2, max_position_embeddings=256, bos_token_id=TOK.bos_token_id,
                       eos_token_id=TOK.eos_token_id, pad_token_id=TOK.pad_token_id)
    model = TinyLM(cfg, seed=seed)
    Trainer(model, recs, TOK, TrainConfig(objective="sft", lr=5e-3, epochs=epochs, batch_size=16, warmup_ratio=0.05),
            progress=False).train()
    return model
