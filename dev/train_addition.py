"""Train a TinyLM on the addition task (o1pruner.tasks.addition) from scratch,
with checkpoints, resume and a per-level greedy evaluation on the validation
split every few hundred steps: the research driver behind the choice of the
task's levels and of the next built-in reference model (issue 15).

    python -m dev.train_addition --out runs/add1 --steps 8000 --threads 1
    python -m dev.train_addition --out runs/add1 ...        # same command: resumes

Every ``--every`` steps the full training state (float32 parameters and
AdamW moments, step) is written atomically to ``OUT/ckpt`` and a float16
copy to ``OUT/stepN``; the evaluation goes to ``OUT/evals.jsonl``. The data
stream depends only on the seed and the step, so a resumed run continues the
same stream (bit-identical to an uninterrupted run at the same thread count).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

import o1pruner
from o1pruner.models import TinyLM, TinyLMConfig
from o1pruner.tasks.addition import AdditionTask, SumLevel, parse_sum_solution
from o1pruner.tasks.arithmetic import CharTokenizer

from .train_reference import SFTSettings, encode_examples, pad_batch


def parse_levels(text: Optional[str]) -> Optional[List[SumLevel]]:
    """``"2,1;2,2"`` -> [SumLevel((2, 1)), SumLevel((2, 2))]."""
    if not text:
        return None
    return [SumLevel(tuple(int(x) for x in part.split(","))) for part in text.split(";")]


def evaluate(model: TinyLM, task: AdditionTask, tok: CharTokenizer, problems) -> List[Dict[str, Any]]:
    """Greedy per-level accuracy, guess and check-line accuracy, checks, consistency, length."""
    ids = [[tok.bos_token_id] + tok.encode(p.prompt) for p in problems]
    g = model.generate(ids, tok, max_new_tokens=230, temperature=0.0, batch_size=128)
    texts = list(g.texts)
    correct = task.grade(texts, problems)
    rows = []
    for lv in range(1, task.n_levels + 1):
        idx = [i for i, p in enumerate(problems) if p.level == lv]
        ps = [parse_sum_solution(texts[i]) for i in idx]
        checks = [r == problems[i].answer for q, i in zip(ps, idx) for r in q["results"][1:]]
        rows.append({"level": lv, "acc": float(np.mean(correct[idx])),
                     "guess": float(np.mean([q["guess"] == problems[i].answer for q, i in zip(ps, idx)])),
                     "check_acc": float(np.mean(checks)) if checks else float("nan"),
                     "checks": float(np.mean([q["n_checks"] for q in ps])),
                     "consistent": float(np.mean([q["consistent"] for q in ps])),
                     "length": float(np.mean([g.lengths[i] for i in idx]))})
    return rows


def _atomic_save(model: TinyLM, path: str, **kw: Any) -> None:
    tmp, old = path + ".tmp", path + ".old"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(tmp, **kw)
    if os.path.exists(path):
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dev.train_addition", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--levels", default=None, help="e.g. '2,1;2,2,1;2,2,2,2;3,3,2;3,3,3,3' (default: the task's)")
    ap.add_argument("--hidden-size", type=int, default=192)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--intermediate-size", type=int, default=576)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--steps", type=int, default=8000, help="length of the learning-rate schedule")
    ap.add_argument("--stop-at", type=int, default=None,
                    help="stop after this step (the schedule still spans --steps): the shipped reference is step 5000")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--every", type=int, default=500, help="steps between checkpoints and evaluations")
    ap.add_argument("--per-level", type=int, default=40, help="validation problems per level in each evaluation")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)

    o1pruner.set_num_threads(a.threads)
    tok = CharTokenizer()
    task = AdditionTask(levels=parse_levels(a.levels))
    os.makedirs(a.out, exist_ok=True)
    state_path = os.path.join(a.out, "state.json")
    start = 0
    if os.path.exists(state_path):
        with open(state_path) as f:
            start = int(json.load(f)["step"])
        model = TinyLM.load(os.path.join(a.out, "ckpt"), optimizer=True)
        print(f"resumed: {a.out}/ckpt at step {start} of {a.steps}", flush=True)
    else:
        cfg = TinyLMConfig(vocab_size=tok.vocab_size, hidden_size=a.hidden_size, intermediate_size=a.intermediate_size,
                           num_hidden_layers=a.layers, num_attention_heads=a.heads, max_position_embeddings=256,
                           bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        model = TinyLM(cfg, seed=a.seed)
        with open(os.path.join(a.out, "settings.json"), "w") as f:
            json.dump({**vars(a), "task": task.describe()}, f, indent=1)
    print(task.describe(), f"\n{model.num_parameters} parameters", flush=True)
    s = SFTSettings(steps=a.steps, batch_size=a.batch_size, lr=a.lr, warmup=a.warmup)
    decay = [v for _, v in model.named_parameters() if v.ndim >= 2]
    val = task.problems(a.per_level * task.n_levels, split="validation", seed=123)
    from o1pruner.models.tinylm import next_token_targets

    bar = None
    if not a.no_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=end, initial=start, desc="SFT", unit="step", dynamic_ncols=True)
    chunk, examples, losses, t0 = 50, [], [], time.time()
    end = a.steps if a.stop_at is None else min(a.steps, a.stop_at)
    if a.stop_at is not None and a.stop_at < 1:
        ap.error("--stop-at: must be >= 1")
    for step in range(start, end):
        j = step % chunk
        if j == 0 or not examples:
            n = chunk * s.batch_size
            cs = [a.seed, 7, step // chunk]
            probs = task.problems(n, split="train", seed=int(np.random.SeedSequence(cs).generate_state(1)[0]),
                                  unique=False)
            order = np.random.default_rng(cs).permutation(n)
            pairs = task.sft_examples([probs[i] for i in order],
                                      seed=int(np.random.SeedSequence(cs + [1]).generate_state(1)[0]))
            examples = encode_examples(tok, pairs)
        batch = examples[j * s.batch_size:(j + 1) * s.batch_size]
        ids, mask = pad_batch([e[0] for e in batch], tok.pad_token_id)
        targets = next_token_targets(ids, mask, prompt_lengths=[e[1] for e in batch])
        lr = s.lr_at(step)
        r = model.train_step(ids, mask, targets, lr=lr, betas=s.betas, weight_decay=0.0, max_grad_norm=s.max_grad_norm)
        f = np.float32(1.0 - lr * s.weight_decay)
        for v in decay:
            v *= f
        losses.append(r["loss"])
        if bar is not None:
            bar.update(1)
            if step % 20 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-100:]):.4f}", lr=f"{lr:.1e}")
        if (step + 1) % a.every == 0 or step + 1 == end:
            rows = evaluate(model, task, tok, val)
            msg = f"step {step + 1}: loss {np.mean(losses[-100:]):.4f} " + " | ".join(
                f"L{r['level']} acc {r['acc']:.2f} guess {r['guess']:.2f} chk {r['check_acc']:.2f} "
                f"k {r['checks']:.1f} cons {r['consistent']:.2f}" for r in rows)
            (bar.write if bar is not None else print)(msg)
            _atomic_save(model, os.path.join(a.out, "ckpt"), optimizer=True)
            _atomic_save(model, os.path.join(a.out, f"step{step + 1}"), optimizer=False, dtype="float16")
            with open(os.path.join(a.out, "evals.jsonl"), "a") as fh:
                fh.write(json.dumps({"step": step + 1, "seconds": time.time() - t0, "rows": rows}) + "\n")
            with open(state_path + ".tmp", "w") as fh:
                json.dump({"step": step + 1}, fh)
            os.replace(state_path + ".tmp", state_path)
    if bar is not None:
        bar.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
