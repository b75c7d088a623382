"""Pre-sampling (method.md step 1): K samples per problem from any generator,
graded and measured, appended crash-safely to JSONL so a killed run resumes
with every sample exactly once; and loading sample files back."""

from __future__ import annotations

import json
import math
import os
import random
import warnings
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .. import data as _io
from ..data.io import FieldError, JSONLError, PathLike
from ..data.prompts import as_template
from ..data.records import as_problems, problems_digest
from ..data.tokenize import count_tokens, ids_of
from ..data.validators import check_sample
from .generate import accepts_kwarg, as_generate, batch_seed, default_answer_grader, default_extract, default_grader, grade_texts, outputs_of

__all__ = ["presample", "load_samples", "PRESAMPLE_FORMAT"]


PRESAMPLE_FORMAT = "o1pruner.presample/1"


def presample(
    generate: Any,
    problems: Union[PathLike, Sequence[Any]],
    k: int,
    *,
    tokenizer: Any = None,
    template: Any = None,
    out: Optional[PathLike] = None,
    batch_size: int = 8,
    grader: Optional[Callable] = None,
    extract: Optional[Callable] = None,
    seed: int = 0,
    generate_kwargs: Optional[Mapping[str, Any]] = None,
    save_token_ids: bool = False,
    resume: bool = True,
    overwrite: bool = False,
    progress: bool = True,
) -> List[Dict[str, Any]]:
    """Draw K samples per problem from the reference model (method.md step 1).

    Each problem's prompt is rendered with `template` (keep the same template
    for training and evaluation), sent K times to `generate`, and each
    output is graded and measured in tokens. With `out`, every finished
    batch is appended to a JSONL file (flushed and fsynced), and a run that
    was interrupted, even killed, resumes where it stopped.

    Parameters
    ----------
    generate : callable or model
        ``generate(prompts: list[str], **generate_kwargs)`` returning one
        output per prompt: a str, an object or dict with ``text`` (and
        ``token_ids``), a vLLM ``RequestOutput``, or one batch object with
        ``texts`` (and ``token_ids``). A model with a ``generate`` method
        (the built-in TinyLM) is called through it. If it accepts a ``seed``
        keyword, each batch gets its own seed derived from `seed`, so a
        resumed run draws the same samples as an uninterrupted one.
    problems : path or sequence
        See :func:`as_problems`.
    k : int
        Samples per problem (>= 1; the paper used 12-16).
    tokenizer : optional
        Counts the length L(y) of each solution text (see
        :func:`count_tokens`). Without it, the token ids the generator
        returned are counted; one of the two is required.
    template : PromptTemplate, str or callable, optional
        See :func:`o1pruner.prompts.as_template`; default the bare problem.
    out : path, optional
        JSONL file of samples (one line per sample), plus ``out + ".meta.json"``
        recording k, seed, batch size, template and a digest of the problems.
    batch_size : int, default 8
        Problems per call of `generate` (``batch_size * k`` prompts).
    grader : callable, optional
        ``grader(responses, golds) -> bools``; default
        :func:`o1pruner.grading.grade_responses` (last ``\\boxed{}`` first).
    extract : callable, optional
        ``extract(text) -> str or None`` recorded as each sample's
        ``answer``; default :func:`o1pruner.grading.extract_answer`.
    seed : int, default 0
    generate_kwargs : dict, optional
        Extra keyword arguments for `generate` (temperature, top_p, ...).
    save_token_ids : bool, default False
        Store the generated token ids in each record (needed to train on
        exactly the sampled tokens; costs space).
    resume : bool, default True
        If `out` exists, keep its complete batches and generate the rest. A
        batch cut short by a crash (and a torn last line) is dropped and
        redone, so there are no duplicates and no lost samples.
    overwrite : bool, default False
        Start afresh even if `out` exists.
    progress : bool, default True
        Show a tqdm progress bar over problems.

    Returns
    -------
    list of dict
        One record per sample, in problem order: ``problem_id``,
        ``sample_index``, ``problem``, ``ground_truth_answer``, ``prompt``,
        ``solution``, ``answer``, ``correct``, ``length`` (and
        ``difficulty``, ``token_ids`` when available).

    Raises
    ------
    ValueError
        Empty problems, ``k < 1``, ``batch_size < 1``, a tokenizer returning
        no tokens, an `out` file written with other settings. Batches already
        written stay on disk.
    """
    k = _io.check_k(k)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size: must be an int >= 1, got {batch_size!r}")
    probs = as_problems(problems)
    tpl = as_template(template)
    gen = as_generate(generate)
    grade_fn = grader if grader is not None else default_grader()
    extract_fn = extract if extract is not None else default_extract()
    gkw = dict(generate_kwargs or {})
    pass_seed = "seed" not in gkw and accepts_kwarg(gen, "seed")
    prompts = [tpl.render(p["problem"], tokenizer) for p in probs]
    n_batches = (len(probs) + batch_size - 1) // batch_size
    meta = {
        "format": PRESAMPLE_FORMAT,
        "k": k,
        "seed": int(seed),
        "batch_size": int(batch_size),
        "n_problems": len(probs),
        "problems_sha256": problems_digest(probs),
        "template": tpl.to_dict(),
        "length_from": "tokenizer" if tokenizer is not None else "token_ids",
    }

    done: Dict[int, List[Dict[str, Any]]] = {}
    appender = None
    if out is not None:
        out = os.fspath(out)
        done = _resume_state(out, meta, probs, k, batch_size, resume, overwrite)
        _io.write_json(out + ".meta.json", meta, indent=1)
        appender = _io.JSONLAppender(out)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(probs), initial=sum(len(v) // k for v in done.values()), desc="presample", unit="problem")
    try:
        for b in range(n_batches):
            if b in done:
                continue
            lo, hi = b * batch_size, min(len(probs), (b + 1) * batch_size)
            batch_prompts = [prompts[i] for i in range(lo, hi) for _ in range(k)]
            kw = dict(gkw)
            if pass_seed:
                kw["seed"] = batch_seed(seed, b)
            outputs = outputs_of(gen(batch_prompts, **kw), len(batch_prompts))
            texts = [t for t, _ in outputs]
            if tokenizer is not None:
                lengths = count_tokens(tokenizer, texts, where=f"outputs of batch {b}")
            else:
                lengths = np.empty(len(outputs), dtype=np.int64)
                for i, (_, ids) in enumerate(outputs):
                    if ids is None:
                        raise ValueError("tokenizer: required, because generate returned texts without token_ids")
                    if len(ids) == 0:
                        raise ValueError(
                            f"token_ids: generate returned no tokens for problem {probs[lo + i // k]['problem_id']!r} "
                            f"sample {i % k}; a length must be >= 1"
                        )
                    lengths[i] = len(ids)
            golds = [probs[lo + i // k]["ground_truth_answer"] for i in range(len(outputs))]
            correct = grade_texts(grade_fn, texts, golds, "samples")
            recs = []
            for i, (text, ids) in enumerate(outputs):
                p = probs[lo + i // k]
                rec = {
                    "problem_id": p["problem_id"],
                    "sample_index": i % k,
                    "problem": p["problem"],
                    "ground_truth_answer": p["ground_truth_answer"],
                }
                if "difficulty" in p:
                    rec["difficulty"] = p["difficulty"]
                rec["prompt"] = batch_prompts[i]
                rec["solution"] = text
                if extract_fn is not None:
                    rec["answer"] = extract_fn(text)
                rec["correct"] = bool(correct[i])
                rec["length"] = int(lengths[i])
                if save_token_ids and ids is not None:
                    rec["token_ids"] = ids
                recs.append(rec)
            if appender is not None:
                appender.write_batch(recs)
            done[b] = recs
            if bar is not None:
                bar.update(hi - lo)
    finally:
        if bar is not None:
            bar.close()
        if appender is not None:
            appender.close()
    return [r for b in range(n_batches) for r in done[b]]


def _resume_state(out, meta, probs, k, batch_size, resume, overwrite) -> Dict[int, List[Dict[str, Any]]]:
    """Complete batches already in `out` (rewriting the file without any
    partial batch), or {} for a fresh start."""
    meta_path = out + ".meta.json"
    exists = os.path.exists(out) and os.path.getsize(out) > 0
    if overwrite or not exists:
        if os.path.exists(out):
            os.remove(out)
        return {}
    if not resume:
        raise ValueError(f"out: {out} exists; pass resume=True to continue it or overwrite=True to start afresh")
    if not os.path.exists(meta_path):
        raise ValueError(f"out: {out} exists but {meta_path} does not, so its settings cannot be checked; pass overwrite=True or another out")
    old = _io.read_json(meta_path)
    for key in ("format", "k", "seed", "batch_size", "n_problems", "problems_sha256", "template", "length_from"):
        if old.get(key) != meta[key]:
            raise ValueError(
                f"out: {out} was written with {key}={old.get(key)!r}, this run has {key}={meta[key]!r}; "
                "pass overwrite=True or another out"
            )
    index = {p["problem_id"]: i for i, p in enumerate(probs)}
    recs = _io.read_jsonl(out, required=("problem_id", "sample_index"), torn_tail="drop")
    by_batch: Dict[int, List[Dict[str, Any]]] = {}
    seen = set()
    dropped = 0
    for r in recs:
        pid = r["problem_id"]
        if pid not in index:
            raise ValueError(f"out: {out} holds problem_id {pid!r}, which is not among the problems")
        key = (pid, r["sample_index"])
        if key in seen:
            dropped += 1
            continue
        seen.add(key)
        by_batch.setdefault(index[pid] // batch_size, []).append(r)
    done = {}
    for b, rs in by_batch.items():
        lo, hi = b * batch_size, min(len(probs), (b + 1) * batch_size)
        if len(rs) == (hi - lo) * k:
            rs.sort(key=lambda r: (index[r["problem_id"]], r["sample_index"]))
            done[b] = rs
        else:
            dropped += len(rs)
    if dropped or recs.torn_tail:
        # rewrite without partial batches, so appending cannot duplicate
        _io.write_jsonl(out, [r for b in sorted(done) for r in done[b]])
        if dropped:
            warnings.warn(f"{out}: dropped {dropped} sample(s) of unfinished batches; they will be generated again", RuntimeWarning, stacklevel=3)
    return done


def load_samples(
    source: Union[PathLike, Sequence[Mapping[str, Any]]],
    *,
    format: str = "auto",
    k: Optional[int] = None,
    problems: Optional[Sequence[Any]] = None,
    template: Any = None,
    tokenizer: Any = None,
) -> List[Dict[str, Any]]:
    """Read samples from any supported source into a list of dicts.

    Parameters
    ----------
    source : path or list of dict
        A list is returned as is (copied). A path is read according to
        `format`.
    format : {"auto", "jsonl", "o1pruner", "vllm"}
        "jsonl": our sample records (one per line, as :func:`presample`
        writes). "o1pruner": the public code's generated-sample JSON (needs
        `k`). "vllm": vLLM-style JSONL (one line per prompt with its
        outputs). "auto": ".json" -> "o1pruner", ".jsonl" -> "vllm" if the
        first record has ``outputs``, else "jsonl".
    k : int, optional
        Samples per problem for the "o1pruner" format.
    problems, template, tokenizer : optional
        For "vllm" files whose lines lack ``problem``/``ground_truth_answer``:
        matched by prompt (see :func:`o1pruner.io.vllm_to_samples`).
    """
    if not isinstance(source, (str, os.PathLike)):
        return [dict(r) for r in source]
    path = os.fspath(source)
    fmt = format
    if fmt == "auto":
        if path.endswith(".json"):
            fmt = "o1pruner"
        else:
            first = next(_io.iter_jsonl(path, torn_tail="drop"), (None, None))[1]
            fmt = "vllm" if isinstance(first, dict) and "outputs" in first else "jsonl"
    if fmt == "o1pruner":
        if k is None:
            raise ValueError("k: required to read the public O1-Pruner sample JSON (K consecutive samples per problem)")
        return _io.read_o1pruner_samples(path, k)
    if fmt == "vllm":
        return _io.vllm_to_samples(path, problems=problems, template=template, tokenizer=tokenizer)
    if fmt == "jsonl":
        return list(_io.read_jsonl(path, required=("problem", "solution", "ground_truth_answer"), check=check_sample))
    raise ValueError(f"format: must be 'auto', 'jsonl', 'o1pruner' or 'vllm', got {format!r}")
