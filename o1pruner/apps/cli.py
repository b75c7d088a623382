"""The ``o1pruner`` command line: ``info``, ``demo`` (the whole method on the
built-in task), ``problems`` (the built-in task's problems as JSONL), and the
pipeline over JSONL files (``presample``, ``build``, ``train``, ``evaluate``)
for users' own models and data.

Conventions of every command: a user error is one line on stderr,
``o1pruner CMD: error: --FLAG: FILE:LINE: what`` (the flag, the file, the
1-based line; a missing input file is ``--FLAG: file not found: FILE``), exit
code 2; an output file's folder must exist; warnings are
``o1pruner CMD: warning: ...``; output cut short by a closed pipe
(``| head -1``) ends quietly."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
import warnings
from typing import Any, List, Optional, Tuple

from .commands import (CLIError, cmd_build, cmd_demo, cmd_evaluate, cmd_info, cmd_presample, cmd_problems,
                       cmd_study, cmd_train)



# ---- loading users' objects ------------------------------------------------------


def _positive_int(v: str) -> int:
    try:
        x = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {v!r}") from None
    if x < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {v!r}")
    return x



def _add_generation_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and prompt")
    g.add_argument("--generator", metavar="SPEC",
                   help="the model: MODULE:NAME or FILE.py:NAME of a callable prompts -> outputs (str, or objects/dicts with "
                        "text and token_ids), or of an object with a .generate method; a class is instantiated")
    g.add_argument("--model", metavar="DIR",
                   help="instead of --generator: a built-in TinyLM checkpoint folder (e.g. the 'model' folder written by "
                        "'o1pruner train'), or 'reference' for the shipped reference model of the addition task ('reference:arithmetic': the arithmetic task's); tokenizer: the built-in "
                        "character tokenizer unless --tokenizer")
    g.add_argument("--max-new-tokens", type=_positive_int,
                   help="with --model: longest generated solution (default: what fits the model, its context minus the "
                        "longest prompt; 230+ for the shipped model on the built-in task)")
    g.add_argument("--no-bos", action="store_true", help="with --model: prompts without the BOS token")
    g.add_argument("--gen-arg", action="append", metavar="KEY=VALUE",
                   help="keyword argument for the generator (repeatable; VALUE parsed as JSON when it can be), e.g. temperature=0.5")
    g.add_argument("--tokenizer", metavar="SPEC",
                   help="counts lengths: MODULE:NAME / FILE.py:NAME of an object with encode(text) or __call__(text)['input_ids'], "
                        "or a local Hugging Face tokenizer folder; default: count the token ids the generator returns")
    g.add_argument("--template", metavar="TEXT",
                   help="user turn of the prompt, with {problem} (default: the bare problem; with --model, the built-in "
                        "model's prompt 'Q:{problem}' and a newline)")
    g.add_argument("--system", metavar="TEXT", help="system turn of the prompt (default: none)")
    g.add_argument("--grader", metavar="SPEC",
                   help="grading function grader(responses, golds) -> bools (default: o1pruner.grading.grade_responses)")


# ---- presample ----------------------------------------------------------------------


# ---- build ----------------------------------------------------------------------------

def _parse_m(v: str):
    if v.lower() in ("all", "none"):
        return None
    try:
        return int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int or 'all', got {v!r}") from None



# ---- evaluate -----------------------------------------------------------------------------


# ---- train ---------------------------------------------------------------------------------

def _lam_arg(v: str):
    if v == "auto":
        return "auto"
    try:
        x = float(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0 or 'auto', got {v!r}") from None
    if not (x >= 0 and x != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a number >= 0 or 'auto', got {v!r}")
    return x



# ---- demo ----------------------------------------------------------------------------------


# ---- study ---------------------------------------------------------------------------------------

def _seeds_arg(v: str) -> List[int]:
    """``0,1,2`` or ``0-4`` (inclusive), or a mix (``0-2,7``)."""
    out: List[int] = []
    try:
        for part in v.split(","):
            part = part.strip()
            if not part:
                continue
            if "-" in part[1:]:
                lo, hi = part.split("-", 1)
                a, b = int(lo), int(hi)
                if b < a:
                    raise ValueError
                out.extend(range(a, b + 1))
            else:
                out.append(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seeds like 0,1,2 or 0-4, got {v!r}") from None
    if not out:
        raise argparse.ArgumentTypeError(f"expected at least one seed, like 0,1,2 or 0-4, got {v!r}")
    if any(x < 0 for x in out):
        raise argparse.ArgumentTypeError(f"seeds must be >= 0, got {v!r}")
    if len(set(out)) != len(out):
        raise argparse.ArgumentTypeError(f"a seed is repeated in {v!r}")
    return out


def _lams_arg(v: str) -> List[float]:
    try:
        out = [float(x) for x in v.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected lambdas like 0,0.5,1,2,5, got {v!r}") from None
    if not out or any(not (x >= 0 and x != float("inf")) for x in out):
        raise argparse.ArgumentTypeError(f"expected finite lambdas >= 0 like 0,0.5,1,2,5, got {v!r}")
    return out


def _names_arg(v: str) -> List[str]:
    out = [x.strip() for x in v.split(",") if x.strip()]
    if not out:
        raise argparse.ArgumentTypeError(f"expected arm names separated by commas, got {v!r}")
    return out


# ---- problems ---------------------------------------------------------------------------------

def _levels_arg(v: str) -> List[int]:
    try:
        out = [int(x) for x in v.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected levels like 1,2,3, got {v!r}") from None
    if not out:
        raise argparse.ArgumentTypeError(f"expected levels like 1,2,3, got {v!r}")
    return out



# ---- parser ----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="o1pruner",
        description="O1-Pruner: length-harmonizing fine-tuning of long-thinking reasoning models.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"o1pruner {__version__}")
    p = sub.add_parser("info", help="print the build configuration (BLAS, flags, SIMD, threads)")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "demo", help="the whole method on the built-in task: presample, build, train (O1-Pruner and SFT-shortest), evaluate",
        description="Run O1-Pruner end to end on a built-in task (default: addition) with its shipped reference model: "
                    "pre-sample the reference on training problems, build the weighted dataset and the SFT-shortest "
                    "baseline, fine-tune a copy of the reference with each, evaluate the three models greedily on "
                    "the test split (settings were chosen on the validation split) and print a Table-2-like table (accuracy, mean length, AES, 95% intervals). "
                    "Writes OUT/results.json, the samples, training logs and checkpoints, and PNG plots. Rerunning "
                    "the same command after an interruption resumes (pre-sampling and training).",
    )
    p.add_argument("--quick", action="store_true", help="small settings (fewer problems and samples; noisier numbers), for CI and a first look")
    p.add_argument("--out", default="demo_out", metavar="DIR", help="output folder (default demo_out)")
    p.add_argument("--seed", type=int, default=0, help="seed of problems, sampling, dataset and training (default 0)")
    p.add_argument("--lam", type=_lam_arg, metavar="X|auto",
                   help="accuracy weight lambda of the reward (default: the demo's setting, see results.json), or 'auto' "
                        "for the dual ascent that enforces the accuracy constraint")
    p.add_argument("--task", default="addition", choices=["addition", "arithmetic"],
                   help="the built-in task (default addition; arithmetic: the first built-in task, with its own "
                        "reference model; the demo's settings were chosen on addition)")
    p.add_argument("--reference", metavar="DIR", help="a TinyLM checkpoint folder to use as the reference (default: the task's shipped model)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override one demo setting (repeatable; VALUE parsed as JSON when it can be): a field of "
                        "o1pruner.demo.DemoSettings (n_train, k, n_eval, max_new_tokens, temperature, lam, "
                        "samples_per_problem, sft_n, ...) or o1pruner.FIELD / sft.FIELD of the two TrainConfigs, "
                        "e.g. --set n_train=50 --set o1pruner.epochs=1; applied after --quick, before --lam")
    p.add_argument("--threads", type=_positive_int, help="threads of the C core, >= 1 (default: all cores)")
    p.add_argument("--no-plots", action="store_true", help="do not write the PNG plots")
    p.add_argument("--quiet", action="store_true", help="no progress bars or messages, only the tables")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "study", help="the demo over seeds with a lambda ablation, m = 2, lambda = auto and the baselines: "
                      "study.json, report.md, plots",
        description="The study behind the demo's headline. For each seed: pre-sample the task's reference once "
                    "(the demo's settings: K = 8, T = 0.6, top-p 0.9), evaluate the reference once, then train and "
                    "evaluate, all from the same samples, the arms: O1-Pruner at each lambda of --lams (the "
                    "demo's lambda, 5, is always one), O1-Pruner with m = 2 samples per problem and with "
                    "lambda = auto (both at the demo's lambda), SFT-shortest and DPO. The baselines and m = 2 "
                    "train as many optimizer steps as the demo's O1-Pruner arm; everything else is the demo's "
                    "full settings (o1pruner demo --help). Each arm's result is written atomically to "
                    "OUT/seed{S}/{arm}/result.json and skipped when present, so rerunning the same command "
                    "after an interruption resumes (pre-sampling resumes too). Then OUT/study.json (every arm x "
                    "seed), OUT/report.md (per arm: mean over seeds with a 95% Student-t interval across seeds "
                    "for length change, accuracy change and AES; paired AES differences within seeds, O1-Pruner "
                    "minus SFT-shortest and minus DPO; the lambda curve; the per-level cut; a computed checklist "
                    "of issue 16's criteria, each met or not met with its numbers) and PNG plots (accuracy vs "
                    "length per arm, per-level cut, lambda curve). One line per finished arm with the elapsed "
                    "time and an ETA. Time on 2 cores: the full study about 85 min (estimated from the demo's stage timings), --quick "
                    "1.5-3.5 min.",
    )
    p.add_argument("--quick", action="store_true",
                   help="tiny settings for tests and CI: seeds 0,1, 30 train problems x K = 4, 50 evaluation "
                        "problems, lambdas 0 and 5 (the numbers are noise)")
    p.add_argument("--out", default="study_out", metavar="DIR", help="output folder (default study_out)")
    p.add_argument("--seeds", type=_seeds_arg, metavar="LIST",
                   help="seeds, e.g. 0,1,2,3,4 or 0-4 (default 0-4; --quick: 0,1); the issue's criteria ask for >= 5")
    p.add_argument("--split", default="test", choices=["test", "validation"],
                   help="evaluation split: test (to report, default) or validation (to choose settings on)")
    p.add_argument("--lams", type=_lams_arg, metavar="LIST",
                   help="lambdas of the ablation (default 0,0.5,1,2,5; --quick: 0,5); the demo's is always added")
    p.add_argument("--arms", type=_names_arg, metavar="LIST",
                   help="run only these arms: o1pruner_lam<X> (one per lambda, e.g. o1pruner_lam0.5), o1pruner_m2, "
                        "o1pruner_auto, sft_shortest, dpo (default: all)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override one demo setting for every arm, as in 'o1pruner demo --set' (e.g. --set n_eval=300, "
                        "--set o1pruner.lr=2e-4); applied after --quick")
    p.add_argument("--reference", metavar="DIR", help="a TinyLM checkpoint folder to use as the reference (default: the shipped model)")
    p.add_argument("--threads", type=_positive_int, help="threads of the C core, >= 1 (default: all cores)")
    p.add_argument("--keep-models", action="store_true",
                   help="keep each arm's final model (OUT/seed{S}/{arm}/train/model, 11 MB each; default: results only)")
    p.add_argument("--no-plots", action="store_true", help="do not write the PNG plots")
    p.add_argument("--quiet", action="store_true", help="no progress lines, only the summary at the end")
    p.set_defaults(func=cmd_study)

    p = sub.add_parser(
        "problems", help="write problems of the built-in task as JSONL (input of presample and evaluate)",
        description="Draw problems of a built-in task (the ones the shipped reference models solve) and "
                    "write them as JSONL records with problem_id, problem, ground_truth_answer and difficulty (the "
                    "level): the --problems file of 'presample' and 'evaluate'. The splits never share an "
                    "expression (addition: train, validation, test; arithmetic: train, heldout); the same flags "
                    "give the same problems.",
    )
    p.add_argument("--task", default="addition", choices=["addition", "arithmetic"],
                   help="the built-in task (default addition)")
    p.add_argument("--n", type=_positive_int, required=True, help="number of problems (levels in equal shares)")
    p.add_argument("--split", default="train", choices=["train", "validation", "test", "heldout"],
                   help="train (to pre-sample and fine-tune on), validation (to choose settings on) or test (to "
                        "report on); the arithmetic task has train and heldout; default train")
    p.add_argument("--seed", type=int, default=0, help="seed; the same flags give the same problems (default 0)")
    p.add_argument("--level", type=_levels_arg, metavar="L[,L...]",
                   help="difficulty levels to draw, e.g. 1,2 (default: all levels, 1 = easiest)")
    p.add_argument("--out", required=True, metavar="FILE.jsonl", help="the problems, one JSON record per line")
    p.set_defaults(func=cmd_problems)

    p = sub.add_parser(
        "train", help="fine-tune a built-in TinyLM on a weighted dataset (O1-Pruner PPO-clip, or SFT)",
        description="Step 3 of O1-Pruner for the built-in model: off-policy PPO-clip fine-tuning against the frozen "
                    "reference (the model as loaded) on the records written by 'o1pruner build' (weights as "
                    "advantages), or supervised fine-tuning (--objective sft, e.g. on 'build --sft-shortest 2'). "
                    "Writes OUT/train_log.jsonl (one line per step), OUT/checkpoints/ and the final OUT/model. "
                    "Rerunning the same command resumes from the last checkpoint. For Hugging Face / PyTorch models "
                    "use o1pruner.hf.O1PrunerTrainer or the TRL / verl integrations.",
    )
    p.add_argument("--data", required=True, metavar="FILE.jsonl",
                   help="training records: prompt (or problem + --template), token_ids or solution, and weight "
                        "(or length, correct, ref_mean_length, ref_accuracy to recompute it with --lam)")
    p.add_argument("--model", default="reference", metavar="DIR",
                   help="the model to fine-tune, also the frozen reference: a TinyLM checkpoint folder, or 'reference' "
                        "for the shipped model (default)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (logs, checkpoints, final model)")
    p.add_argument("--objective", default="ppo", choices=["ppo", "sft"], help="ppo: O1-Pruner (default); sft: plain SFT")
    p.add_argument("--epochs", type=int, default=1, help="passes over the data (default 1, as the public code)")
    p.add_argument("--batch-size", type=int, default=32, help="sequences per optimizer step (default 32)")
    p.add_argument("--micro-batch-size", type=int, help="sequences per forward/backward (gradient accumulation; same result)")
    p.add_argument("--lr", type=float, default=1e-4, help="peak learning rate (default 1e-4)")
    p.add_argument("--warmup-ratio", type=float, default=0.1, help="linear warmup share, then cosine to 0 (default 0.1)")
    p.add_argument("--max-grad-norm", type=float, default=10.0, help="gradient-norm clip (default 10; <= 0: none)")
    p.add_argument("--eps-low", type=float, default=0.2, help="PPO clip: ratio >= 1 - eps_low (default 0.2)")
    p.add_argument("--eps-high", type=float, default=0.2, help="PPO clip: ratio <= 1 + eps_high (default 0.2)")
    p.add_argument("--ratio", default="sequence_mean", choices=["sequence_mean", "token"],
                   help="importance ratio: length-normalised sequence ratio (public code, default) or per token (TRL/verl)")
    p.add_argument("--aggregate", help="loss aggregation (see o1pruner.ppo_clip_loss; default: that of the ratio mode)")
    p.add_argument("--lam", type=_lam_arg, metavar="X|auto",
                   help="recompute the weights with this lambda, or 'auto' for dual ascent on lambda (default: use the records' weights)")
    p.add_argument("--lam-lr", type=float, default=5.0, help="dual ascent step size eta (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data order (default 0)")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default: only at the end)")
    p.add_argument("--tokenizer", metavar="SPEC", help="tokenizer (MODULE:NAME / FILE.py:NAME; default: the built-in character tokenizer)")
    p.add_argument("--template", metavar="TEXT", help="render prompts from 'problem' with this user turn ({problem}) instead of the records' 'prompt'")
    p.add_argument("--system", metavar="TEXT", help="system turn for --template")
    p.add_argument("--no-bos", action="store_true", help="prompts without the BOS token")
    p.add_argument("--no-resume", action="store_true", help="fail if OUT holds a checkpoint instead of resuming")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "presample", help="draw K samples per problem from a model, grade and measure them (JSONL, resumable)",
        description="Step 1 of O1-Pruner: sample each problem K times, grade each sample and count its tokens. "
                    "Finished batches are appended to OUT as they come; rerunning the same command after an "
                    "interruption resumes without redoing finished problems.",
    )
    p.add_argument("--problems", required=True, metavar="FILE",
                   help="problems: JSON array or JSONL with 'problem' and 'ground_truth_answer' (optional 'problem_id', 'difficulty')")
    p.add_argument("--k", type=int, required=True, help="samples per problem (paper: 12-16)")
    p.add_argument("--out", required=True, metavar="FILE.jsonl", help="sample records, one per line (+ FILE.jsonl.meta.json)")
    p.add_argument("--batch-size", type=int, default=8, help="problems per generator call (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed (passed per batch to generators that take a seed; default 0)")
    p.add_argument("--save-token-ids", action="store_true", help="store the generated token ids in each record")
    p.add_argument("--overwrite", action="store_true", help="start afresh even if OUT exists")
    p.add_argument("--no-resume", action="store_true", help="fail if OUT exists instead of resuming")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_generation_args(p)
    p.set_defaults(func=cmd_presample)

    p = sub.add_parser(
        "build", help="build the weighted training set from samples (public O1-Pruner construction)",
        description="Step 2 of O1-Pruner: per-problem reference statistics over all K samples, a seeded shuffle, "
                    "m samples kept per problem, w = (Lbar - L)/L + lam (A - Abar), clipped and z-normalised, "
                    "exactly as the public code's construct_dataset.py by default.",
    )
    p.add_argument("--samples", required=True, metavar="FILE",
                   help="samples: our JSONL (from presample), vLLM-style JSONL, or the public code's JSON (with --k)")
    p.add_argument("--format", default="auto", choices=["auto", "jsonl", "o1pruner", "vllm"], help="format of --samples (default: by extension)")
    p.add_argument("--k", type=int, help="samples per problem, for the public JSON format (K consecutive samples per problem)")
    p.add_argument("--out", required=True, metavar="FILE.jsonl", help="training records with reference statistics, reward and weight")
    p.add_argument("--llamafactory", metavar="FILE", help="also write the LLaMA-Factory weighted set (messages + weight; .json or .jsonl)")
    p.add_argument("--lam", type=float, default=2.0, help="accuracy weight lambda (default 2; the public code used 5 for QwQ)")
    p.add_argument("--samples-per-problem", type=_parse_m, default=2, metavar="M", help="samples kept per problem, or 'all' (default 2)")
    p.add_argument("--clip", type=float, nargs=2, default=[-2.0, 4.0], metavar=("LOW", "HIGH"), help="clip range (default -2 4)")
    p.add_argument("--no-clip", action="store_true", help="do not clip")
    p.add_argument("--normalize", default="dataset", choices=["dataset", "group", "none"], help="z-normalisation (default dataset)")
    p.add_argument("--seed", type=int, default=42, help="shuffle seed (default 42, as the public code)")
    p.add_argument("--selection", default="random", choices=["random", "first"], help="which m samples: seeded shuffle (default) or file order")
    p.add_argument("--grade-from", default="solution", choices=["solution", "answer"],
                   help="grade samples without 'correct' from the whole solution (default) or the stored 'answer' (public code)")
    p.add_argument("--sft-shortest", type=int, metavar="N", help="instead: the SFT baseline, the N shortest correct samples per problem, weight 1")
    p.add_argument("--tokenizer", metavar="SPEC", help="counts tokens of samples without 'length' (see presample --help)")
    p.add_argument("--grader", metavar="SPEC", help="grades samples without 'correct' (see presample --help)")
    p.add_argument("--template", metavar="TEXT", help="user turn for --llamafactory, with {problem} (default: the bare problem)")
    p.add_argument("--system", metavar="TEXT", help="system turn for --llamafactory (default: the public code's system prompt)")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser(
        "evaluate", help="accuracy, length, per-difficulty numbers with 95%% CIs; compare with a reference",
        description="Step 4 of O1-Pruner: evaluate stored greedy outputs (--samples) or run a generator on problems "
                    "(--generator, --problems). With --reference, print delta length, delta accuracy and AES.",
    )
    p.add_argument("--samples", metavar="FILE", help="stored outputs to evaluate (any format 'build' reads)")
    p.add_argument("--problems", metavar="FILE", help="problems to run --generator on")
    p.add_argument("--reference", metavar="FILE", help="stored outputs of the reference model on the same problems")
    p.add_argument("--ref-samples", metavar="FILE",
                   help="pre-sampled reference records (graded) giving Abar_ref buckets for problems without 'difficulty'")
    p.add_argument("--format", default="auto", choices=["auto", "jsonl", "o1pruner", "vllm"], help="format of --samples/--reference")
    p.add_argument("--k", type=int, help="samples per problem, for the public JSON format")
    p.add_argument("--name", default="model", help="name of the evaluated model in the output")
    p.add_argument("--batch-size", type=int, default=64, help="prompts per generator call (default 64)")
    p.add_argument("--confidence", type=float, default=0.95, help="confidence level of the intervals (default 0.95)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    p.add_argument("--outputs", metavar="FILE.jsonl",
                   help="write the evaluated outputs (problem, answer, solution, length, correct, bucket), one per line: "
                        "a file --samples and --reference read back")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_generation_args(p)
    p.set_defaults(func=cmd_evaluate)
    return parser


#: Input files of each command (flag, attribute): checked to exist before
#: anything runs, and named by their flag in error messages.
_INPUTS = {
    "presample": (("--problems", "problems"),),
    "build": (("--samples", "samples"),),
    "evaluate": (("--samples", "samples"), ("--problems", "problems"), ("--reference", "reference"),
                 ("--ref-samples", "ref_samples")),
    "train": (("--data", "data"),),
}
#: Output files (their folder must exist: a typo is not silently created)
#: and output folders (created, but their parent must exist).
_OUTPUT_FILES = {
    "presample": (("--out", "out"),),
    "build": (("--out", "out"), ("--llamafactory", "llamafactory")),
    "evaluate": (("--json", "json"), ("--outputs", "outputs")),
    "problems": (("--out", "out"),),
}
_OUTPUT_DIRS = {"train": (("--out", "out"),), "demo": (("--out", "out"),), "study": (("--out", "out"),)}


def _flagged(args: argparse.Namespace, table) -> List[Tuple[str, str]]:
    return [(flag, os.fspath(getattr(args, attr))) for flag, attr in table.get(args.command, ())
            if getattr(args, attr, None) is not None]


def _check_paths(args: argparse.Namespace) -> None:
    for flag, path in _flagged(args, _INPUTS):
        if not os.path.exists(path):
            raise CLIError(f"{flag}: file not found: {path}")
        if os.path.isdir(path):
            raise CLIError(f"{flag}: {path} is a folder, expected a file")
    for flag, path in _flagged(args, _OUTPUT_FILES):
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise CLIError(f"{flag}: the folder of {path} does not exist ({parent}); create it first")
        if os.path.isdir(path):
            raise CLIError(f"{flag}: {path} is a folder, expected a file name")
    for flag, path in _flagged(args, _OUTPUT_DIRS):
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise CLIError(f"{flag}: the parent folder of {path} does not exist ({parent}); create it first")


def _message(args: argparse.Namespace, e: BaseException) -> str:
    """One line in the package's convention: the flag, the file, the 1-based
    line (``--samples: s.jsonl:3: not valid JSON``)."""
    files = _flagged(args, _INPUTS) + _flagged(args, _OUTPUT_FILES)
    if isinstance(e, FileNotFoundError) and e.filename is not None:
        name = os.fspath(e.filename)
        for flag, path in files:
            if os.path.abspath(path) == os.path.abspath(name):
                return f"{flag}: file not found: {path}"
        return f"file not found: {name}"
    msg = str(e)
    if not msg.startswith("--"):
        for flag, path in files:
            if msg.startswith(path + ":") or msg.startswith(path + "["):
                return f"{flag}: {msg}"
    return msg


def main(argv: Optional[List[str]] = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's final flush
        return code
    except BrokenPipeError:
        # the reader of stdout went away (`o1pruner info | head -1`): stop
        # quietly, and keep Python from failing again on the final flush
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 141  # 128 + SIGPIPE, what a shell reports for a killed writer


def _main(argv: Optional[List[str]]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2

    def show_warning(message, category, filename, lineno, file=None, line=None):
        print(f"o1pruner {args.command}: warning: {message}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = show_warning
            _check_paths(args)
            return int(args.func(args) or 0)
    except (CLIError, ValueError, TypeError, FileNotFoundError, RuntimeError, ImportError, IsADirectoryError) as e:
        print(f"o1pruner {args.command}: error: {_message(args, e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
