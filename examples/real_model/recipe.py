"""O1-Pruner on a real Hugging Face model, end to end, in one command.

Four stages, each resumable (a stage whose output exists is skipped, and
pre-sampling resumes batch by batch):

1. presample  K samples per training problem from the reference model
              (vLLM when installed and on a GPU, else o1pruner.hf.HFGenerator)
              -> OUT/samples.jsonl
2. build      the weighted training set (o1pruner.build_dataset) -> OUT/train.jsonl
3. train      O1PrunerTrainer through examples/hf/train_o1pruner.py (plain
              python, or accelerate/DeepSpeed with --accelerate-config)
              -> OUT/run/final
4. evaluate   reference and pruned model, greedy, on the held-out problems
              -> OUT/eval_reference.jsonl, OUT/eval_pruned.jsonl, the
              comparison table (o1pruner.compare), OUT/results.json

    python examples/real_model/recipe.py --model Qwen/Qwen2.5-1.5B-Instruct \\
        --problems math_train_hard.json --test-problems gsm8k.json --out runs/qwen15 --bf16

Settings against the paper's: examples/real_model/README.md. GPU smoke run
with a tiny random model built locally (nothing downloaded):

    python examples/real_model/recipe.py --smoke --model tiny-random \\
        --problems ../shared/data/benchmarks/gsm8k.json --out /tmp/o1p_smoke
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TRAIN_SCRIPT = os.path.join(os.path.dirname(HERE), "hf", "train_o1pruner.py")
STAGES = ("presample", "build", "train", "evaluate")
TINY = "tiny-random"

#: --smoke: a few problems, short generations, two optimizer steps.
SMOKE = dict(n_train=8, n_test=8, k=4, max_new_tokens=32, problems_per_batch=2, batch=4, per_device_batch=2,
             max_steps=2, max_length=512, lr=1e-5)

#: Settings that decide what the stages write; a rerun into the same --out
#: must use the same ones (the engine, device, bf16 and stage may change).
DATA_SETTINGS = ("model", "problems", "test_problems", "n_train", "n_test", "k", "temperature", "top_p",
                 "max_new_tokens", "system", "user", "problems_per_batch", "lam", "samples_per_problem", "preset", "lr", "batch",
                 "max_length", "max_steps", "seed")


def parse(argv=None):
    from o1pruner.io import PUBLIC_SYSTEM_PROMPT

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True,
                   help=f"reference model: Hugging Face name or local path, or '{TINY}' (a tiny random Qwen2 "
                        "built from a config, for smoke runs)")
    p.add_argument("--problems", required=True,
                   help="training problems: .json array or .jsonl with problem and ground_truth_answer")
    p.add_argument("--test-problems", default=None,
                   help="held-out problems; default: --n-test problems split off --problems (seeded)")
    p.add_argument("--out", required=True, help="output folder (every stage's files; rerun to resume)")
    p.add_argument("--stage", default="all", choices=("all",) + STAGES,
                   help="run one stage only (its inputs must exist); 'all' runs those not done yet")
    p.add_argument("--n-train", type=int, default=None, help="training problems (default: all; paper <= 10k "
                   "training sequences)")
    p.add_argument("--n-test", type=int, default=500, help="held-out problems")
    p.add_argument("--k", type=int, default=16, help="samples per training problem (paper: 16 Marco-o1, 12 QwQ)")
    p.add_argument("--temperature", type=float, default=0.5, help="pre-sampling temperature (paper 0.5)")
    p.add_argument("--top-p", type=float, default=0.8, help="pre-sampling top_p (paper 0.8)")
    p.add_argument("--max-new-tokens", type=int, default=2048,
                   help="generation budget for sampling and evaluation (paper 8192 for o1-like models)")
    p.add_argument("--system", default=PUBLIC_SYSTEM_PROMPT, help="system prompt (one template for every stage)")
    p.add_argument("--user", default="{problem}", help="user turn ({problem} is replaced)")
    p.add_argument("--lam", type=float, default=2.0, help="lambda (paper 2 Marco-o1; the code used 5 for QwQ)")
    p.add_argument("--samples-per-problem", type=int, default=2, help="training samples kept per problem "
                   "(public code 2)")
    p.add_argument("--preset", default="marco-o1-7b", choices=["marco-o1-7b", "qwq-32b"],
                   help="paper hyper-parameters (1 epoch, cosine, warmup 0.1, clip 10, batch 32; lr 2e-7 / 2e-6)")
    p.add_argument("--lr", type=float, default=None, help="override the preset's learning rate")
    p.add_argument("--batch", type=int, default=32, help="effective batch (paper 32)")
    p.add_argument("--per-device-batch", type=int, default=1)
    p.add_argument("--max-length", type=int, default=3072, help="training token cutoff (paper 3072 / 4096)")
    p.add_argument("--max-steps", type=int, default=-1, help="stop training early (smoke runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"), help="where models run")
    p.add_argument("--bf16", action="store_true", help="bfloat16 weights and training (GPU)")
    p.add_argument("--engine", default="auto", choices=("auto", "vllm", "hf"),
                   help="generation engine: auto = vLLM when installed and on a GPU, else HFGenerator")
    p.add_argument("--gen-batch", type=int, default=16, help="prompts per HFGenerator call (evaluation: per "
                   "generator call)")
    p.add_argument("--problems-per-batch", type=int, default=32,
                   help="problems per pre-sampling batch (x K prompts per generator call; the unit of resuming)")
    p.add_argument("--tensor-parallel", type=int, default=1, help="vLLM tensor_parallel_size")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--accelerate-config", default=None,
                   help="train with 'accelerate launch --config_file FILE' (e.g. examples/hf/accelerate_zero3.yaml)")
    p.add_argument("--deepspeed", default=None, help="DeepSpeed config for training (e.g. examples/hf/ds_zero3.json)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny run: " + ", ".join(f"{k}={v}" for k, v in SMOKE.items()) + " (explicit flags win)")
    a = p.parse_args(argv)
    if a.smoke:
        given = {arg.split("=")[0] for arg in (argv if argv is not None else sys.argv[1:]) if arg.startswith("--")}
        for k, v in SMOKE.items():
            if "--" + k.replace("_", "-") not in given:
                setattr(a, k, v)
    for name in ("k", "n_test", "max_new_tokens", "batch", "per_device_batch", "samples_per_problem", "gen_batch",
                 "problems_per_batch"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')}: must be >= 1, got {getattr(a, name)}")
    if a.n_train is not None and a.n_train < 1:
        p.error(f"--n-train: must be >= 1, got {a.n_train}")
    return a


def log(msg: str) -> None:
    print(f"[recipe] {msg}", flush=True)


def paths(out: str) -> dict:
    return {k: os.path.join(out, v) for k, v in dict(
        settings="recipe.json", train_problems="problems_train.jsonl", test_problems="problems_test.jsonl",
        tiny_model="tiny_random_model", samples="samples.jsonl", presampled="samples.done.json",
        train="train.jsonl", run="run", final=os.path.join("run", "final"),
        eval_reference="eval_reference.jsonl", eval_pruned="eval_pruned.jsonl", results="results.json").items()}


# ---- settings and problems ------------------------------------------------------

def check_settings(a, P) -> None:
    """Record the settings of this --out on the first run; refuse a rerun
    with different ones (its files would mix two experiments)."""
    import o1pruner.io as io

    mine = {k: getattr(a, k) for k in DATA_SETTINGS}
    if os.path.exists(P["settings"]):
        old = io.read_json(P["settings"])
        diff = [k for k in DATA_SETTINGS if old.get(k) != mine[k]]
        if diff:
            k = diff[0]
            sys.exit(f"--out {a.out}: made with {k}={old.get(k)!r}, now {mine[k]!r} "
                     f"({len(diff)} setting(s) differ: {', '.join(diff)}); use another --out")
    else:
        os.makedirs(a.out, exist_ok=True)
        io.write_json(P["settings"], mine, indent=1)


def split_problems(a, P) -> None:
    """problems_train.jsonl / problems_test.jsonl, written once."""
    import numpy as np

    import o1pruner
    import o1pruner.io as io

    if os.path.exists(P["train_problems"]) and os.path.exists(P["test_problems"]):
        return
    train = o1pruner.as_problems(a.problems, where="--problems")
    if a.test_problems is not None:
        test = o1pruner.as_problems(a.test_problems, where="--test-problems")[:a.n_test]
    else:  # a seeded split of one file: the held-out problems are never trained on
        order = np.random.default_rng(a.seed).permutation(len(train))
        if len(train) < a.n_test + 1:
            sys.exit(f"--problems: {len(train)} problems cannot give {a.n_test} held-out ones and a training set; "
                     "lower --n-test or pass --test-problems")
        test = [train[i] for i in order[:a.n_test]]
        train = [train[i] for i in sorted(order[a.n_test:])]
    if a.n_train is not None:
        train = train[:a.n_train]
    io.write_jsonl(P["train_problems"], train)
    io.write_jsonl(P["test_problems"], test)
    log(f"problems: {len(train)} for training -> {P['train_problems']}, {len(test)} held out -> {P['test_problems']}")


# ---- models and generators -----------------------------------------------------------

def device_of(a) -> str:
    if a.device != "auto":
        return a.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def model_path(a, P) -> str:
    """The reference model's name or path; for 'tiny-random', a tiny Qwen2 and
    a tokenizer trained on the problems, built once into OUT (no download)."""
    if a.model != TINY:
        return a.model
    path = P["tiny_model"]
    if not os.path.exists(os.path.join(path, "config.json")):
        import o1pruner
        import o1pruner.hf as H

        texts = [p["problem"] + " " + p["ground_truth_answer"] for p in o1pruner.as_problems(P["train_problems"])]
        tok = H.tiny_tokenizer(texts + [a.system or ""], vocab_size=400)
        model = H.tiny_qwen2(tok, hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                             max_position_embeddings=2048, seed=a.seed)
        tmp = path + ".tmp"
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        os.replace(tmp, path)
        log(f"built a tiny random Qwen2 ({sum(p.numel() for p in model.parameters())} parameters) in {path}")
    return path


def load_tokenizer(name: str):
    import transformers

    return transformers.AutoTokenizer.from_pretrained(name)


def load_hf_model(name: str, a):
    import torch
    import transformers

    dtype_kw = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    model = transformers.AutoModelForCausalLM.from_pretrained(
        name, **{dtype_kw: torch.bfloat16 if a.bf16 else torch.float32})
    return model.to(device_of(a)).eval()


def use_vllm(a) -> bool:
    if a.engine == "hf":
        return False
    try:
        import vllm  # noqa: F401
    except ImportError:
        if a.engine == "vllm":
            sys.exit("--engine vllm: vllm is not installed (pip install vllm), or use --engine hf")
        return False
    return a.engine == "vllm" or device_of(a) == "cuda"


class VLLMGenerator:
    """``generate(prompts, seed=None)`` over vllm.LLM for o1pruner.presample /
    evaluate: already rendered prompts in, one {"text", "token_ids"} out per
    prompt, token ids without the final eos (as HFGenerator counts them);
    per-prompt seeds, so a resumed pre-sampling draws what an uninterrupted
    one would. temperature 0 is greedy."""

    def __init__(self, path: str, tokenizer_path: str, tokenizer, a, temperature: float, top_p: float):
        from vllm import LLM

        self.llm = LLM(model=path, tokenizer=tokenizer_path, dtype="bfloat16" if a.bf16 else "auto", seed=a.seed,
                       tensor_parallel_size=a.tensor_parallel)
        self.eos = tokenizer.eos_token_id
        self.temperature, self.top_p, self.max_tokens = temperature, top_p, a.max_new_tokens

    def __call__(self, prompts, seed=None):
        from vllm import SamplingParams

        if self.temperature == 0:
            params = SamplingParams(temperature=0.0, max_tokens=self.max_tokens)
        else:
            params = [SamplingParams(temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens,
                                     seed=None if seed is None else seed * 100003 + i) for i in range(len(prompts))]
        outs = self.llm.generate(list(prompts), params, use_tqdm=False)
        res = []
        for o in outs:
            ids = list(o.outputs[0].token_ids)
            if ids and ids[-1] == self.eos:
                ids.pop()
            res.append({"text": o.outputs[0].text, "token_ids": ids})
        return res

    def close(self) -> None:
        del self.llm
        try:
            from vllm.distributed.parallel_state import destroy_distributed_environment, destroy_model_parallel

            destroy_model_parallel()
            destroy_distributed_environment()
        except Exception:  # noqa: BLE001 - best effort: the module moved between vLLM versions
            pass
        release_memory()


class Tokens:
    """The tokenizer given to o1pruner.presample / evaluate: prompts rendered
    with the model's chat template (as the training script renders them),
    L(y) counted by tokenizing the response text (the public code's way, the
    units of the trainer and of the TRL/verl reference statistics); an empty
    response counts as one token (its eos), as the TRL and verl rewards
    count it, since a length must be >= 1."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.chat_template = getattr(tokenizer, "chat_template", None)

    def apply_chat_template(self, *args, **kwargs):
        return self.tokenizer.apply_chat_template(*args, **kwargs)

    def encode(self, text: str):
        return self.tokenizer.encode(text) or [self.tokenizer.eos_token_id]


class HFGen:
    """o1pruner.hf.HFGenerator on the chosen device, with a close()."""

    def __init__(self, model, tokenizer, a, do_sample: bool):
        from o1pruner.hf import HFGenerator

        kw = dict(do_sample=True, temperature=a.temperature, top_p=a.top_p) if do_sample else {}
        self.gen = HFGenerator(model, tokenizer, max_new_tokens=a.max_new_tokens, batch_size=a.gen_batch, **kw)

    def __call__(self, prompts, seed=None):
        return self.gen(prompts, seed=seed)

    def close(self) -> None:
        del self.gen
        release_memory()


def release_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def generator(path: str, tokenizer, a, P, sampling: bool):
    """A generator over the model at `path`, always with the reference's
    tokenizer (the pruned checkpoint is the same vocabulary)."""
    if use_vllm(a):
        log(f"generating with vLLM ({path})")
        return VLLMGenerator(path, model_path(a, P), tokenizer, a, a.temperature if sampling else 0.0, a.top_p)
    log(f"generating with HFGenerator on {device_of(a)} ({path})")
    return HFGen(load_hf_model(path, a), tokenizer, a, do_sample=sampling)


def template(a):
    import o1pruner

    return o1pruner.PromptTemplate(a.user, system=a.system)


# ---- the four stages --------------------------------------------------------------

def stage_presample(a, P) -> None:
    import numpy as np

    import o1pruner
    import o1pruner.io as io

    if os.path.exists(P["presampled"]):
        d = io.read_json(P["presampled"])
        log(f"presample: done before ({d['n_samples']} samples in {P['samples']}), skipped")
        return
    n_prob = len(o1pruner.as_problems(P["train_problems"]))
    if os.path.exists(P["samples"]):
        with open(P["samples"], "rb") as f:
            n_lines = sum(1 for _ in f)
        log(f"presample: resuming, {n_lines} of {n_prob * a.k} samples found in {P['samples']}")
    path = model_path(a, P)
    tok = load_tokenizer(path)
    gen = generator(path, tok, a, P, sampling=True)
    t0 = time.time()
    samples = o1pruner.presample(gen, P["train_problems"], k=a.k, template=template(a), tokenizer=Tokens(tok),
                                 out=P["samples"], batch_size=a.problems_per_batch, seed=a.seed,
                                 progress=sys.stderr.isatty())
    gen.close()
    acc = float(np.mean([s["correct"] for s in samples]))
    length = float(np.mean([s["length"] for s in samples]))
    io.write_json(P["presampled"], {"n_samples": len(samples), "accuracy": acc, "mean_length": length,
                                    "seconds": time.time() - t0}, indent=1)
    log(f"presample: {len(samples)} samples, accuracy {100 * acc:.1f}%, mean length {length:.1f} tokens, "
        f"{time.time() - t0:.0f} s -> {P['samples']}")


def stage_build(a, P) -> None:
    import o1pruner

    if os.path.exists(P["train"]):
        log(f"build: done before ({P['train']}), skipped")
        return
    if not os.path.exists(P["presampled"]):
        sys.exit(f"build: {P['presampled']} missing; run the presample stage first")
    ds = o1pruner.build_dataset(P["samples"], lam=a.lam, samples_per_problem=a.samples_per_problem,
                                clip=(-2.0, 4.0), normalize="dataset", seed=42, out=P["train"])
    log(f"build: {len(ds)} weighted records (lambda {a.lam}, {a.samples_per_problem} per problem, clip (-2, 4), "
        f"dataset z-normalisation) -> {P['train']}")
    from o1pruner.evaluation import Table

    log("the reference's samples by difficulty (Abar_ref buckets):")
    print(Table(o1pruner.difficulty_report(P["samples"])), flush=True)


def stage_train(a, P) -> None:
    if os.path.exists(os.path.join(P["final"], "config.json")):
        log(f"train: done before ({P['final']}), skipped")
        return
    if not os.path.exists(P["train"]):
        sys.exit(f"train: {P['train']} missing; run the build stage first")
    args = [TRAIN_SCRIPT, "--model", model_path(a, P), "--data", P["train"], "--output", P["run"],
            "--preset", a.preset, "--batch", str(a.batch), "--per-device-batch", str(a.per_device_batch),
            "--max-length", str(a.max_length), "--max-steps", str(a.max_steps), "--user", a.user]
    if a.system is not None:
        args += ["--system", a.system]
    if a.lr is not None:
        args += ["--lr", repr(a.lr)]
    if a.bf16:
        args.append("--bf16")
    if a.gradient_checkpointing:
        args.append("--gradient-checkpointing")
    if a.deepspeed:
        args += ["--deepspeed", a.deepspeed]
    if device_of(a) == "cpu":
        args.append("--use-cpu")
    if a.accelerate_config:
        cmd = ["accelerate", "launch", "--config_file", a.accelerate_config] + args
    else:
        cmd = [sys.executable] + args
    log("train: " + " ".join(cmd))
    t0 = time.time()
    # a child process: its GPU memory is free again for the evaluation
    rc = subprocess.run(cmd).returncode
    if rc != 0:
        sys.exit(f"train: the training command failed (exit status {rc}); rerun to retry (the reference "
                 f"log-probs in {P['run']}/records_with_reference.jsonl are reused)")
    log(f"train: {time.time() - t0:.0f} s -> {P['final']}")


def evaluate_one(name: str, path: str, tok, a, P, out: str):
    import o1pruner
    import o1pruner.io as io

    if os.path.exists(out):
        log(f"evaluate {name}: done before ({out}), reused")
        return o1pruner.evaluate_samples(out, name=name, seed=a.seed)
    gen = generator(path, tok, a, P, sampling=False)
    res = o1pruner.evaluate(gen, P["test_problems"], name=name, template=template(a), tokenizer=Tokens(tok),
                            batch_size=a.gen_batch, seed=a.seed)
    gen.close()
    io.write_jsonl(out, res.samples)
    log(f"evaluate {name}: {res.seconds:.0f} s -> {out}")
    return res


def comparison(ref, new):
    """o1pruner.compare's table; when the reference is never right (AES is
    then undefined, e.g. a random smoke model) the same columns with the
    AES left empty."""
    import o1pruner
    from o1pruner.evaluation import Table

    if ref.accuracy > 0:
        return o1pruner.compare(ref, new, as_pandas=False)
    nan, nan2 = float("nan"), (float("nan"), float("nan"))
    rows = []
    for r in (ref, new):
        rows.append({"model": r.name, "accuracy": r.accuracy, "accuracy_ci": tuple(r.accuracy_ci),
                     "mean_length": r.mean_length, "length_ci": tuple(r.length_ci),
                     "delta_length": (r.mean_length - ref.mean_length) / ref.mean_length,
                     "delta_accuracy": r.accuracy - ref.accuracy, "aes": nan, "n": r.n,
                     "delta_length_ci": nan2, "delta_accuracy_ci": nan2, "aes_ci": nan2})
    return Table(rows)


def stage_evaluate(a, P) -> None:
    import math

    import o1pruner.io as io

    if not os.path.exists(os.path.join(P["final"], "config.json")):
        sys.exit(f"evaluate: {P['final']} missing; run the train stage first")
    path = model_path(a, P)
    tok = load_tokenizer(path)  # the pruned model is evaluated with the reference's tokenizer and template
    ref = evaluate_one("reference", path, tok, a, P, P["eval_reference"])
    new = evaluate_one("o1pruner", P["final"], tok, a, P, P["eval_pruned"])
    table = comparison(ref, new)
    print(table, flush=True)
    if ref.accuracy == 0:
        log("the reference model is never right on these problems: AES (relative accuracy change) is undefined")
    clean = lambda v: None if isinstance(v, float) and not math.isfinite(v) else (  # noqa: E731
        [clean(x) for x in v] if isinstance(v, (list, tuple)) else v)
    io.write_json(P["results"], {"settings": io.read_json(P["settings"]),
                                 "rows": [{k: clean(v) for k, v in r.items()} for r in table.rows]}, indent=1)
    log(f"results -> {P['results']}")


def main(argv=None) -> int:
    a = parse(argv)
    P = paths(a.out)
    check_settings(a, P)
    split_problems(a, P)
    stages = STAGES if a.stage == "all" else (a.stage,)
    run = {"presample": stage_presample, "build": stage_build, "train": stage_train, "evaluate": stage_evaluate}
    for s in stages:
        run[s](a, P)
    return 0


if __name__ == "__main__":
    sys.exit(main())
