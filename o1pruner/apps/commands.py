"""The commands of the ``o1pruner`` command line (one function per
subcommand, called with the parsed arguments) and what they share: loading a
generator, a tokenizer, a template, a model. The parser is in :mod:`.cli`."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
from typing import Any, List, Optional

__all__ = ["CLIError", "load_object", "load_tokenizer", "generator_and_tokenizer"]


class CLIError(Exception):
    """A user error reported as ``o1pruner CMD: error: ...`` (exit code 2)."""


def cmd_info(args: argparse.Namespace) -> int:
    from .. import show_config

    show_config()
    return 0


def load_object(spec: str, what: str) -> Any:
    """``"package.module:name"`` or ``"path/to/file.py:name"`` -> the object.
    A class is instantiated with no arguments."""
    if ":" not in spec:
        raise CLIError(f"--{what}: expected MODULE:NAME or FILE.py:NAME, got {spec!r}")
    mod_name, _, attr = spec.rpartition(":")
    try:
        if mod_name.endswith(".py"):
            if not os.path.exists(mod_name):
                raise CLIError(f"--{what}: file not found: {mod_name}")
            name = "_o1pruner_user_" + os.path.splitext(os.path.basename(mod_name))[0]
            s = importlib.util.spec_from_file_location(name, mod_name)
            mod = importlib.util.module_from_spec(s)
            sys.modules[name] = mod
            s.loader.exec_module(mod)
        else:
            mod = importlib.import_module(mod_name)
    except ImportError as e:
        raise CLIError(f"--{what}: cannot import {mod_name!r}: {e}") from None
    obj = mod
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise CLIError(f"--{what}: {mod_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if isinstance(obj, type):
        obj = obj()
    return obj


def load_tokenizer(spec: Optional[str]) -> Any:
    """``MODULE:NAME`` / ``FILE.py:NAME``, or a local Hugging Face tokenizer
    folder (needs ``transformers``; nothing is downloaded)."""
    if spec is None:
        return None
    if os.path.isdir(spec):
        try:
            from transformers import AutoTokenizer
        except ImportError:
            raise CLIError("--tokenizer: a tokenizer folder needs the transformers package (pip install transformers)") from None
        return AutoTokenizer.from_pretrained(spec, local_files_only=True)
    return load_object(spec, "tokenizer")


def _template(args, builtin_model: bool = False) -> Any:
    """The prompt template of --template / --system; with a built-in model
    (--model) and neither flag, the prompt that model was trained on."""
    from ..data.prompts import PromptTemplate

    if args.template is None and args.system is None:
        if builtin_model:
            from .demo import DEMO_TEMPLATE

            return PromptTemplate(user=DEMO_TEMPLATE)
        return None
    return PromptTemplate(user=args.template or "{problem}", system=args.system)


def _gen_kwargs(args) -> dict:
    kw = {}
    for item in args.gen_arg or []:
        if "=" not in item:
            raise CLIError(f"--gen-arg: expected KEY=VALUE, got {item!r}")
        k, _, v = item.partition("=")
        try:
            kw[k] = json.loads(v)
        except json.JSONDecodeError:
            kw[k] = v
    return kw


def _default_max_new_tokens(args, gen) -> int:
    """What fits the built-in model: its context minus the longest prompt
    of the problems (the C core stops a longer request)."""
    from ..data.records import as_problems

    ctx = gen.model.config.max_position_embeddings
    if not getattr(args, "problems", None):
        return ctx - 1
    tpl = _template(args, builtin_model=True)
    longest = max((len(gen.format.prompt_ids(tpl.render(p["problem"]) if tpl is not None else p["problem"]))
                   for p in as_problems(args.problems)), default=1)
    if longest >= ctx:
        raise CLIError(f"--problems: a prompt has {longest} tokens, the model's context is {ctx}: no room for a solution")
    return ctx - longest


def _load_tinylm(path: str):
    from ..models import TinyLM

    if path in ("reference", "reference:addition", "reference:arithmetic"):
        try:
            from ..models import load_reference
        except ImportError:
            raise CLIError("--model: the shipped reference model is not in this build; pass a checkpoint folder") from None
        return load_reference(path.partition(":")[2] or "addition")
    if not os.path.isdir(path) or not os.path.exists(os.path.join(path, "config.json")):
        raise CLIError(f"--model: {path!r} is not a model folder (config.json + model.safetensors)")
    return TinyLM.load(path, optimizer=False)


def generator_and_tokenizer(args, required: bool = True):
    """(generate callable, tokenizer) from --generator or --model (a built-in
    TinyLM checkpoint, with the built-in tokenizer unless --tokenizer)."""
    tok = load_tokenizer(args.tokenizer)
    if getattr(args, "model", None):
        if args.generator:
            raise CLIError("--model: give either --model or --generator, not both")
        from ..models.generator import TinyLMGenerator

        if tok is None:
            from ..tasks import CharTokenizer

            tok = CharTokenizer()
        gen = TinyLMGenerator(_load_tinylm(args.model), tok, max_new_tokens=args.max_new_tokens or 1,
                              add_bos=not args.no_bos)
        if args.max_new_tokens is None:
            gen.max_new_tokens = _default_max_new_tokens(args, gen)
        return gen, tok
    if not args.generator:
        if required:
            raise CLIError("--generator: required (the model to sample), or --model DIR for a built-in TinyLM")
        return None, tok
    return load_object(args.generator, "generator"), tok


def cmd_presample(args: argparse.Namespace) -> int:
    from ..pipeline import presample

    gen, tok = generator_and_tokenizer(args)
    recs = presample(
        gen, args.problems, args.k, tokenizer=tok, template=_template(args, builtin_model=bool(args.model)), out=args.out,
        batch_size=args.batch_size, grader=load_object(args.grader, "grader") if args.grader else None, seed=args.seed,
        generate_kwargs=_gen_kwargs(args), save_token_ids=args.save_token_ids, resume=not args.no_resume,
        overwrite=args.overwrite, progress=not args.quiet,
    )
    n_prob = len({r["problem_id"] for r in recs})
    acc = sum(r["correct"] for r in recs) / len(recs)
    mean_len = sum(r["length"] for r in recs) / len(recs)
    print(f"{len(recs)} samples of {n_prob} problems in {args.out}: accuracy {100 * acc:.1f}%, mean length {mean_len:.1f} tokens")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from ..pipeline import Table, difficulty_report
    from ..pipeline import build_dataset, sft_shortest_dataset

    common = dict(k=args.k, tokenizer=load_tokenizer(args.tokenizer),
                  grader=load_object(args.grader, "grader") if args.grader else None,
                  grade_from=args.grade_from, format=args.format)
    if args.sft_shortest:
        ds = sft_shortest_dataset(args.samples, n=args.sft_shortest, **common)
    else:
        ds = build_dataset(
            args.samples, lam=args.lam, samples_per_problem=args.samples_per_problem,
            clip=None if args.no_clip else tuple(args.clip), normalize=None if args.normalize == "none" else args.normalize,
            seed=args.seed, selection=args.selection, **common,
        )
    ds.to_jsonl(args.out)
    if args.llamafactory:
        ds.to_llamafactory(args.llamafactory, template=_template(args))
    print(ds.summary())
    print(f"wrote {args.out}" + (f" and {args.llamafactory}" if args.llamafactory else ""))
    print("\nreference statistics by difficulty (Abar_ref buckets):")
    print(Table(difficulty_report(ds)))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..pipeline import compare, evaluate, evaluate_samples

    gen, tok = generator_and_tokenizer(args, required=False)
    grader = load_object(args.grader, "grader") if args.grader else None
    common = dict(tokenizer=tok, grader=grader, ref_accuracy=args.ref_samples, confidence=args.confidence, seed=args.seed)
    if args.samples:
        res = evaluate_samples(args.samples, name=args.name, format=args.format, k=args.k, **common)
    else:
        if not (gen is not None and args.problems):
            raise CLIError("evaluate: pass --samples FILE, or --generator SPEC (or --model DIR) with --problems FILE")
        res = evaluate(gen, args.problems, name=args.name, template=_template(args, builtin_model=bool(args.model)),
                       batch_size=args.batch_size,
                       generate_kwargs=_gen_kwargs(args), progress=not args.quiet, **common)
    print(res)
    if args.outputs:
        from ..data import write_jsonl

        write_jsonl(args.outputs, res.samples)
        print(f"wrote {args.outputs}")
    out = {"result": res.to_dict(samples=True)}
    if args.reference:
        ref = evaluate_samples(args.reference, name="reference", format=args.format, k=args.k, **common)
        table = compare(ref, res, as_pandas=False)
        print()
        print(table)
        out["reference"] = ref.to_dict(samples=False)
        out["comparison"] = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in r.items()} for r in table.rows]
    if args.json:
        from ..data import json_clean, write_json

        write_json(args.json, json_clean(out), indent=1)
        print(f"wrote {args.json}")
    return 0


def _train_config(args, objective: str):
    from ..train import PPOConfig, TrainConfig

    ppo = PPOConfig(eps_low=args.eps_low, eps_high=args.eps_high, ratio=args.ratio, aggregate=args.aggregate)
    kw = dict(objective=objective, epochs=args.epochs, batch_size=args.batch_size, micro_batch_size=args.micro_batch_size,
              lr=args.lr, warmup_ratio=args.warmup_ratio, max_grad_norm=None if args.max_grad_norm <= 0 else args.max_grad_norm,
              **ppo.to_dict(), lam_lr=args.lam_lr, seed=args.seed, checkpoint_every=args.checkpoint_every)
    if objective == "ppo":
        kw["lam"] = args.lam
    return TrainConfig(**kw)


def cmd_train(args: argparse.Namespace) -> int:
    from ..train import Trainer

    tok = load_tokenizer(args.tokenizer)
    if tok is None:
        from ..tasks import CharTokenizer

        tok = CharTokenizer()
    if not os.path.exists(args.data):
        raise CLIError(f"--data: file not found: {args.data}")
    model = _load_tinylm(args.model)
    cfg = _train_config(args, args.objective)
    trainer = Trainer(model, args.data, tok, cfg, out_dir=args.out, template=_template(args), add_bos=not args.no_bos,
                      progress=not args.quiet)
    hist = trainer.train(resume=not args.no_resume)
    last = hist[-1] if hist else {}
    print(f"trained {trainer.step} steps on {len(trainer.data)} samples; last loss {last.get('loss', float('nan')):.4f}, "
          f"clip fraction {last.get('clip_fraction', 0.0):.3f}" + (f", lambda {trainer.lam:.3f}" if trainer.lam is not None else ""))
    print(f"wrote {os.path.join(args.out, 'model')} and {os.path.join(args.out, 'train_log.jsonl')}")
    return 0


def _parse_value(v: str) -> Any:
    try:
        return json.loads(v)
    except json.JSONDecodeError:
        return v


def _apply_settings(settings, items: List[str]):
    """``--set KEY=VALUE`` overrides of a :class:`o1pruner.demo.DemoSettings`:
    KEY is one of its fields, or ``o1pruner.FIELD`` / ``sft.FIELD`` of the
    training settings (:class:`o1pruner.TrainConfig`); VALUE is parsed as JSON
    when it can be (``20``, ``1e-3``, ``null``, ``"auto"``), else a string."""
    import dataclasses

    fields = {f.name for f in dataclasses.fields(settings)}
    for item in items:
        if "=" not in item:
            raise CLIError(f"--set: expected KEY=VALUE, got {item!r}")
        key, _, raw = item.partition("=")
        key, value = key.strip(), _parse_value(raw)
        head, _, sub = key.partition(".")
        if head in ("o1pruner", "sft", "dpo") and sub:
            cfg = getattr(settings, head)
            if sub not in {f.name for f in dataclasses.fields(cfg)}:
                raise CLIError(f"--set: TrainConfig has no field {sub!r} (in {item!r})")
            try:
                settings = dataclasses.replace(settings, **{head: dataclasses.replace(cfg, **{sub: value})})
            except (TypeError, ValueError) as e:
                raise CLIError(f"--set {key}: {e}") from None
        elif key in fields and key not in ("o1pruner", "sft", "dpo"):
            settings = dataclasses.replace(settings, **{key: value})
        else:
            raise CLIError(f"--set: the demo has no setting {key!r}; settings: "
                           + ", ".join(sorted(fields - {"o1pruner", "sft", "dpo"})) + ", o1pruner.FIELD, sft.FIELD, dpo.FIELD")
    return settings


def cmd_demo(args: argparse.Namespace) -> int:
    from .. import set_num_threads
    from .demo import DemoSettings, format_levels, format_table, run_demo

    if args.threads is not None:
        set_num_threads(args.threads)
    settings = (DemoSettings.quick if args.quick else DemoSettings.full)(seed=args.seed, task=args.task)
    settings = _apply_settings(settings, args.set or [])
    if args.lam is not None:
        import dataclasses

        if args.lam == "auto":
            settings.o1pruner = dataclasses.replace(settings.o1pruner, lam="auto")
        else:
            settings.lam = float(args.lam)
            if settings.o1pruner.lam is not None:
                settings.o1pruner = dataclasses.replace(settings.o1pruner, lam=float(args.lam))
    log = (lambda m: None) if args.quiet else print

    def show(res):  # as soon as results.json is written, before the plots
        print()
        print(format_table(res))
        print()
        print(f"per difficulty level ({res.get('eval_split', 'test')} split):")
        print(format_levels(res))
        print()
        nd = res.get("non_default_options") or []
        print("O1-Pruner options that differ from the public code's defaults: " + (", ".join(nd) if nd else "none"))
        print(f"results in {os.path.join(args.out, 'results.json')}", flush=True)

    res = run_demo(args.out, settings, reference=args.reference, plots=not args.no_plots, progress=not args.quiet, log=log,
                   on_results=show)
    print(f"total {res['seconds']:.0f} s" + ("" if args.no_plots else "; plots: " + ", ".join(
        os.path.join(args.out, p) for p in res.get("plots", []))))
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    from .. import set_num_threads
    from .study import run_study, study_settings

    if args.threads is not None:
        set_num_threads(args.threads)
    settings = _apply_settings(study_settings(args.quick, args.split), args.set or [])
    log = (lambda m: None) if args.quiet else (lambda m: print(m, flush=True))
    st = run_study(args.out, args.seeds, split=args.split, quick=args.quick, lams=args.lams, arms=args.arms,
                   settings=settings, reference=args.reference, plots=not args.no_plots, keep_models=args.keep_models,
                   log=log)
    met = [it for it in st["checklist"] if it["met"]]
    print(f"study of {len(st['seeds'])} seeds x {len(st['arms'])} arms ({st['split']} split): "
          f"{len(met)} of {len(st['checklist'])} criteria met; "
          f"{os.path.join(args.out, 'report.md')}, {os.path.join(args.out, 'study.json')}"
          + ("" if args.no_plots else ", plots: " + ", ".join(st.get("plots", []))))
    print(f"total {st['timing']['seconds_this_run']:.0f} s")
    return 0


def cmd_problems(args: argparse.Namespace) -> int:
    from .demo import task_problems
    from ..data import write_jsonl
    from ..tasks import get_task

    task = get_task(args.task)
    if args.split not in task.splits:
        raise CLIError(f"--split: the {args.task} task's splits are {', '.join(task.splits)}, got {args.split}")
    if args.level is not None:
        bad = [x for x in args.level if not 1 <= x <= task.n_levels]
        if bad:
            raise CLIError(f"--level: levels are 1..{task.n_levels}, got {bad[0]}")
    try:
        recs = task_problems(task, args.n, args.split, args.seed, levels=args.level)
    except ValueError as e:
        raise CLIError(f"--n: {e}") from None
    write_jsonl(args.out, recs)
    levels = sorted({r["difficulty"] for r in recs})
    print(f"wrote {len(recs)} {args.task} problems ({args.split} split, seed {args.seed}, levels "
          f"{','.join(map(str, levels))}) to {args.out}")
    return 0
