"""The O1-Pruner data pipeline (method.md steps 1-2): pre-sample a model K
times per problem, grade and measure each sample, and build the weighted
training set exactly as the public O1-Pruner code does, on the C kernels.

Works with the built-in model and with anything that maps prompts to texts
(vLLM, Hugging Face, an API), counting lengths with the user's tokenizer."""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import random
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import io as _io
from .io import JSONLError, FieldError
from .prompts import as_template
from .rewards import harmonize_weights, length_harmonizing_reward, reference_stats

__all__ = [
    "as_problems",
    "count_tokens",
    "presample",
    "load_samples",
    "build_dataset",
    "sft_shortest_dataset",
    "WeightedDataset",
]

PathLike = Union[str, "os.PathLike[str]"]

# Field names accepted for a problem's text, gold answer, id and difficulty.
_TEXT_KEYS = ("problem", "question", "expr")
_GOLD_KEYS = ("ground_truth_answer", "answer", "gold")
_ID_KEYS = ("problem_id", "id")
_DIFF_KEYS = ("difficulty", "level")

PRESAMPLE_FORMAT = "o1pruner.presample/1"


# ---- problems ---------------------------------------------------------------

def _get(obj, keys):
    for k in keys:
        if isinstance(obj, Mapping):
            if k in obj and obj[k] is not None:
                return k, obj[k]
        elif getattr(obj, k, None) is not None:
            return k, getattr(obj, k)
    return None, None


def as_problems(problems: Union[PathLike, Sequence[Any]], where: str = "problems") -> List[Dict[str, Any]]:
    """Normalise a problem list to dicts ``{problem_id, problem,
    ground_truth_answer[, difficulty]}`` (other fields kept).

    Parameters
    ----------
    problems : path or sequence
        A ``.json`` array or ``.jsonl`` file, or a sequence of dicts or
        objects. Text is read from ``problem`` (or ``question``, ``expr``), the gold
        answer from ``ground_truth_answer`` (or ``answer``, ``gold``), the id
        from ``problem_id`` (or ``id``; default: the position in the list),
        the difficulty from ``difficulty`` (or ``level``) when present.

    Raises
    ------
    ValueError
        Empty list, a missing field (naming the item, or the file and line),
        duplicate ids, ids that are not int or str.
    """
    src = where
    if isinstance(problems, (str, os.PathLike)):
        path = os.fspath(problems)
        src = path
        if path.endswith(".jsonl"):
            items = []
            for line, rec in _io.iter_jsonl(path):
                items.append((line, rec))
        else:
            data = _io.read_json(path)
            if not isinstance(data, list):
                raise JSONLError(path, None, f"expected a JSON array of problems, got {type(data).__name__}")
            items = [(i + 1, rec) for i, rec in enumerate(data)]
        label = lambda line: f"{path}:{line}"  # noqa: E731
    else:
        if isinstance(problems, Mapping) or isinstance(problems, (str, bytes)):
            raise TypeError(f"{where}: expected a sequence of problems or a path, got {type(problems).__name__}")
        items = list(enumerate(problems))
        label = lambda i: f"{where}[{i}]"  # noqa: E731
    if not items:
        raise ValueError(f"{src}: empty problem list")
    out = []
    seen = set()
    for pos, (loc, obj) in enumerate(items):
        tk, text = _get(obj, _TEXT_KEYS)
        if text is None:
            raise ValueError(f"{label(loc)}: missing field 'problem'")
        if not isinstance(text, str):
            raise ValueError(f"{label(loc)}: field {tk!r} must be a string, got {type(text).__name__}")
        gk, gold = _get(obj, _GOLD_KEYS)
        if gold is None:
            raise ValueError(f"{label(loc)}: missing field 'ground_truth_answer'")
        ik, pid = _get(obj, _ID_KEYS)
        if pid is None:
            pid = pos
        if isinstance(pid, np.integer):
            pid = int(pid)
        if isinstance(pid, bool) or not isinstance(pid, (int, str)):
            raise ValueError(f"{label(loc)}: field 'problem_id' must be an int or str, got {type(pid).__name__}")
        if pid in seen:
            raise ValueError(f"{label(loc)}: duplicate problem_id {pid!r}")
        seen.add(pid)
        rec = dict(obj) if isinstance(obj, Mapping) else {}
        for k in (tk, gk, ik):
            rec.pop(k, None)
        rec.update(problem_id=pid, problem=text, ground_truth_answer=str(gold))
        dk, diff = _get(obj, _DIFF_KEYS)
        if diff is not None:
            rec.pop(dk, None)
            rec["difficulty"] = diff.item() if isinstance(diff, np.generic) else diff
        out.append(rec)
    return out


def _problems_digest(problems: Sequence[Mapping[str, Any]]) -> str:
    h = hashlib.sha256()
    for p in problems:
        h.update(json.dumps([p["problem_id"], p["problem"], p["ground_truth_answer"]], ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


# ---- tokenizers and generators ------------------------------------------------

def _ids_of(x) -> Optional[List[int]]:
    """Token ids out of what a tokenizer returned: a list/array of ids, a
    mapping with ``input_ids``, or an object with ``.ids``/``.input_ids``."""
    if x is None:
        return None
    if isinstance(x, Mapping):
        x = x.get("input_ids")
    elif hasattr(x, "ids") and not isinstance(x, (list, tuple, np.ndarray)):
        x = x.ids
    elif hasattr(x, "input_ids") and not isinstance(x, (list, tuple, np.ndarray)):
        x = x.input_ids
    if x is None:
        return None
    if isinstance(x, (list, tuple)) and (not x or not isinstance(x[0], (list, tuple))):
        return list(x)  # ids, or token strings: either way one entry per token
    arr = np.asarray(x)
    if arr.ndim == 2 and arr.shape[0] == 1:  # return_tensors-style batch of one
        arr = arr[0]
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        return None
    return arr.tolist()


def count_tokens(tokenizer: Any, texts: Sequence[str], where: str = "texts") -> np.ndarray:
    """Token length of each text under `tokenizer`.

    Any tokenizer works whose ``encode(text)`` returns ids (a list, an array,
    or an object with ``.ids`` such as a ``tokenizers.Encoding``), or whose
    ``tokenizer(text)["input_ids"]`` does (a Hugging Face tokenizer; like the
    public O1-Pruner code, special tokens it adds by default are counted).

    Returns
    -------
    ndarray of int64, shape (len(texts),)

    Raises
    ------
    TypeError
        The tokenizer has neither interface.
    ValueError
        The tokenizer returned nothing (no ids) for a text, naming its index.
    """
    if hasattr(tokenizer, "encode") and callable(tokenizer.encode):
        enc = tokenizer.encode
    elif callable(tokenizer):
        enc = tokenizer
    else:
        raise TypeError(f"tokenizer: needs an encode(text) method or to be callable, got {type(tokenizer).__name__}")
    out = np.empty(len(texts), dtype=np.int64)
    for i, t in enumerate(texts):
        ids = _ids_of(enc(t))
        if ids is None:
            raise ValueError(f"tokenizer: returned no token ids for {where}[{i}] (expected a list of ints, a mapping with 'input_ids' or an object with .ids)")
        if len(ids) == 0:
            raise ValueError(f"tokenizer: returned no tokens for {where}[{i}] (text of {len(t)} characters); a length must be >= 1")
        out[i] = len(ids)
    return out


def _outputs_of(result: Any, n: int) -> List[Tuple[str, Optional[List[int]]]]:
    """(text, token_ids or None) for each of the n prompts, from whatever a
    generator returned: a list of str, of dicts/objects with ``text`` (and
    ``token_ids``), of vLLM ``RequestOutput`` (first output), or one batch
    object with ``texts`` (and ``token_ids``)."""
    if hasattr(result, "texts") and not isinstance(result, (list, tuple)):
        texts = list(result.texts)
        ids = getattr(result, "token_ids", None)
        ids = [None] * len(texts) if ids is None else [None if x is None else np.asarray(x).tolist() for x in ids]
        items = list(zip(texts, ids))
    elif isinstance(result, (list, tuple)):
        items = []
        for i, r in enumerate(result):
            if isinstance(r, str):
                items.append((r, None))
                continue
            if hasattr(r, "outputs") and not isinstance(r, Mapping):  # vLLM RequestOutput
                r = r.outputs[0]
            if isinstance(r, Mapping):
                text, ids = r.get("text"), r.get("token_ids")
            else:
                text, ids = getattr(r, "text", None), getattr(r, "token_ids", None)
            if not isinstance(text, str):
                raise TypeError(f"generate: output {i} has no text (got {type(r).__name__}); return str or objects with .text")
            items.append((text, None if ids is None else np.asarray(ids).tolist()))
    else:
        raise TypeError(f"generate: expected a list of outputs, got {type(result).__name__}")
    if len(items) != n:
        raise ValueError(f"generate: returned {len(items)} outputs for {n} prompts")
    return items


def _accepts(fn: Callable, name: str) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    return name in sig.parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())


def _generator(generate_or_model: Any) -> Callable:
    if hasattr(generate_or_model, "generate") and callable(generate_or_model.generate):
        return generate_or_model.generate
    if callable(generate_or_model):
        return generate_or_model
    raise TypeError(f"generate: expected a callable prompts -> texts or a model with .generate, got {type(generate_or_model).__name__}")


# ---- grading -------------------------------------------------------------------

def _default_grader() -> Callable:
    try:
        from .grading import grade_responses
    except ImportError as e:  # pragma: no cover - until the grader is built in
        raise RuntimeError(
            "grader: o1pruner.grading is not available in this build; pass grader=callable(responses, golds) -> bools"
        ) from e
    return grade_responses


def _default_answer_grader() -> Callable:
    try:
        from .grading import grade_many
    except ImportError as e:  # pragma: no cover
        raise RuntimeError("grader: o1pruner.grading is not available; pass grader=callable(answers, golds) -> bools") from e
    return grade_many


def _default_extract() -> Optional[Callable]:
    try:
        from .grading import extract_answer
    except ImportError:  # pragma: no cover
        return None
    return extract_answer


def _grade(grader: Callable, texts: Sequence[str], golds: Sequence[str], where: str) -> np.ndarray:
    got = grader(list(texts), list(golds))
    arr = np.asarray(got)
    if arr.shape != (len(texts),):
        raise ValueError(f"grader: returned shape {arr.shape} for {len(texts)} {where}")
    if arr.dtype.kind == "b":
        return arr
    if arr.dtype.kind in "iuf" and np.all((arr == 0) | (arr == 1)):
        return arr.astype(bool)
    raise ValueError(f"grader: must return booleans (or 0/1) for the {where}, got dtype {arr.dtype}")


# ---- pre-sampling ----------------------------------------------------------------

def _batch_seed(seed: int, b: int) -> int:
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, b]).generate_state(1)[0])


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
    k = _io._check_k(k)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size: must be an int >= 1, got {batch_size!r}")
    probs = as_problems(problems)
    tpl = as_template(template)
    gen = _generator(generate)
    grade_fn = grader if grader is not None else _default_grader()
    extract_fn = extract if extract is not None else _default_extract()
    gkw = dict(generate_kwargs or {})
    pass_seed = "seed" not in gkw and _accepts(gen, "seed")
    prompts = [tpl.render(p["problem"], tokenizer) for p in probs]
    n_batches = (len(probs) + batch_size - 1) // batch_size
    meta = {
        "format": PRESAMPLE_FORMAT,
        "k": k,
        "seed": int(seed),
        "batch_size": int(batch_size),
        "n_problems": len(probs),
        "problems_sha256": _problems_digest(probs),
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
                kw["seed"] = _batch_seed(seed, b)
            outputs = _outputs_of(gen(batch_prompts, **kw), len(batch_prompts))
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
            correct = _grade(grade_fn, texts, golds, "samples")
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


# ---- loading samples ----------------------------------------------------------------

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
        return list(_io.read_jsonl(path, required=("problem", "solution", "ground_truth_answer"), check=_check_sample))
    raise ValueError(f"format: must be 'auto', 'jsonl', 'o1pruner' or 'vllm', got {format!r}")


def _check_sample(rec: Dict[str, Any]) -> None:
    """Per-line checks of a sample record (used while reading, so errors
    carry the line number)."""
    if "length" in rec and rec["length"] is not None:
        L = rec["length"]
        if isinstance(L, bool) or not isinstance(L, (int, float)):
            raise FieldError("length", f"field 'length' must be a number, got {type(L).__name__}")
        if not (L > 0) or not math.isfinite(L):
            raise FieldError("length", f"field 'length' must be > 0 and finite, got {L}")
    if "correct" in rec and rec["correct"] is not None:
        c = rec["correct"]
        if not isinstance(c, (bool, int, float)) or not (0 <= c <= 1):
            raise FieldError("correct", f"field 'correct' must be a boolean (or a number in [0, 1]), got {c!r}")
    if not isinstance(rec["solution"], str):
        raise FieldError("solution", f"field 'solution' must be a string, got {type(rec['solution']).__name__}")


# ---- the weighted dataset -------------------------------------------------------------

@dataclass
class WeightedDataset:
    """The training set of O1-Pruner: selected samples with their reference
    statistics, reward and weight.

    Attributes
    ----------
    records : list of dict
        One per training sample: the sample's fields plus ``correct``,
        ``length``, ``ref_mean_length`` (Lbar_ref), ``ref_accuracy``
        (Abar_ref), ``n_samples`` (K), ``reward`` (R before clipping) and
        ``weight`` (after clipping and normalisation).
    problems : list of dict
        One per problem: ``problem_id``, ``ref_mean_length``,
        ``ref_accuracy``, ``n_samples`` (and ``difficulty`` when known).
    weight_mean, weight_std : float
        Mean and standard deviation (ddof 0) of the clipped rewards, which
        the "dataset" normalisation subtracts and divides by (the public
        code prints them).
    params : dict
        The construction's options.
    """

    records: List[Dict[str, Any]]
    problems: List[Dict[str, Any]]
    weight_mean: float
    weight_std: float
    params: Dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self):
        return iter(self.records)

    def __getitem__(self, i):
        return self.records[i]

    def arrays(self) -> Dict[str, np.ndarray]:
        """Columns as NumPy arrays: length, correct, ref_mean_length,
        ref_accuracy, reward, weight, and ``group`` (the problem's row in
        :attr:`problems`)."""
        row = {p["problem_id"]: i for i, p in enumerate(self.problems)}
        cols = {c: np.array([r[c] for r in self.records], dtype=np.float64) for c in ("length", "ref_mean_length", "ref_accuracy", "reward", "weight")}
        cols["correct"] = np.array([r["correct"] for r in self.records], dtype=bool)
        cols["group"] = np.array([row[_key(r["problem_id"])] for r in self.records], dtype=np.int64)
        return cols

    def to_jsonl(self, path: PathLike) -> None:
        """Write the records as JSONL (atomically)."""
        _io.write_jsonl(path, self.records)

    def to_llamafactory(self, path: PathLike, template: Any = None) -> None:
        """Write the LLaMA-Factory weighted training set (messages +
        weight); see :func:`o1pruner.io.write_llamafactory`."""
        _io.write_llamafactory(path, self.records, template=template)

    def to_pandas(self):
        """The records as a pandas DataFrame (token ids left out)."""
        import pandas as pd

        return pd.DataFrame([{k: v for k, v in r.items() if k != "token_ids"} for r in self.records])

    def summary(self) -> str:
        a = self.arrays()
        return (
            f"{len(self.records)} training samples from {len(self.problems)} problems; "
            f"reward mean {a['reward'].mean():.3f}; weight before normalisation mean {self.weight_mean:.3f} "
            f"std {self.weight_std:.3f}; samples correct {a['correct'].mean():.1%}"
        )

    def __repr__(self) -> str:
        return f"WeightedDataset({self.summary()})"


def _key(pid):
    return tuple(pid) if isinstance(pid, list) else pid


def _lengths_and_correct(
    samples: List[Dict[str, Any]], tokenizer, grader, grade_from: str, where: str
) -> Tuple[np.ndarray, np.ndarray]:
    n = len(samples)
    lengths = np.empty(n, dtype=np.float64)
    need_tok = []
    for i, r in enumerate(samples):
        for f in ("solution", "ground_truth_answer"):
            if r.get(f) is None:
                raise ValueError(f"{where}[{i}]: missing field {f!r}")
        L = r.get("length")
        if L is None and r.get("token_ids") is not None and tokenizer is None:
            L = len(r["token_ids"])
        if L is None:
            if tokenizer is None:
                raise ValueError(f"{where}[{i}]: missing field 'length' (pass tokenizer= to count the solution's tokens)")
            need_tok.append(i)
            continue
        if isinstance(L, bool) or not isinstance(L, (int, float, np.integer, np.floating)):
            raise ValueError(f"{where}[{i}]: field 'length' must be a number, got {type(L).__name__}")
        if not (L > 0) or not math.isfinite(L):
            raise ValueError(f"{where}[{i}]: field 'length' must be > 0 and finite, got {L}")
        lengths[i] = L
    if need_tok:
        lengths[need_tok] = count_tokens(tokenizer, [samples[i]["solution"] for i in need_tok], where=f"{where} (solution)")
    correct = np.zeros(n, dtype=bool)
    need_grade = []
    for i, r in enumerate(samples):
        c = r.get("correct")
        if c is None:
            need_grade.append(i)
        elif isinstance(c, (bool, np.bool_)) or (isinstance(c, (int, float)) and c in (0, 1)):
            correct[i] = bool(c)
        else:
            raise ValueError(f"{where}[{i}]: field 'correct' must be a boolean, got {c!r}")
    if need_grade:
        if grade_from == "solution":
            fn = grader if grader is not None else _default_grader()
            texts = [samples[i]["solution"] for i in need_grade]
        elif grade_from == "answer":
            fn = grader if grader is not None else _default_answer_grader()
            texts = []
            for i in need_grade:
                a = samples[i].get("answer")
                if a is None:
                    raise ValueError(f"{where}[{i}]: missing field 'answer' (grade_from='answer')")
                texts.append(str(a))
        else:
            raise ValueError(f"grade_from: must be 'solution' or 'answer', got {grade_from!r}")
        correct[need_grade] = _grade(fn, texts, [str(samples[i]["ground_truth_answer"]) for i in need_grade], where)
    return lengths, correct


def _prepare(samples, k, tokenizer, grader, grade_from, format):
    where = os.fspath(samples) if isinstance(samples, (str, os.PathLike)) else "samples"
    recs = load_samples(samples, format=format, k=k, tokenizer=tokenizer)
    if not recs:
        raise ValueError(f"{where}: empty")
    if k is not None and not isinstance(samples, (str, os.PathLike)) and not any("problem_id" in r for r in recs):
        k = _io._check_k(k)
        if len(recs) % k:
            raise ValueError(f"samples: {len(recs)} samples is not a multiple of k={k}")
        for i, r in enumerate(recs):
            r["problem_id"], r["sample_index"] = divmod(i, k)
    groups = _io._group_by_problem(recs, where=where)
    order = list(groups)
    for g, key in enumerate(order):
        for j, r in enumerate(groups[key]):
            if r.get("problem_id") is None:
                r["problem_id"] = g
            r.setdefault("sample_index", j)
    flat = [r for key in order for r in groups[key]]
    offsets = np.cumsum([0] + [len(groups[key]) for key in order])
    lengths, correct = _lengths_and_correct(flat, tokenizer, grader, grade_from, where if isinstance(samples, (str, os.PathLike)) else "samples")
    return flat, order, offsets, lengths, correct


def _check_build_options(lam, samples_per_problem, selection: str = "random", normalize: Optional[str] = "dataset",
                         clip: Any = None, grade_from: str = "solution") -> None:
    """Validate the options of :func:`build_dataset` (shared with
    :func:`o1pruner.build_dataset_streaming` and the Ray builder) before any
    sample is read or graded; each error names its option."""
    if isinstance(lam, bool) or not isinstance(lam, (int, float, np.integer, np.floating)) or not math.isfinite(lam) or lam < 0:
        raise ValueError(f"lam: must be a finite number >= 0, got {lam!r}")
    if samples_per_problem is not None and (isinstance(samples_per_problem, bool)
                                            or not isinstance(samples_per_problem, (int, np.integer))
                                            or samples_per_problem < 1):
        raise ValueError(f"samples_per_problem: must be an int >= 1 or None, got {samples_per_problem!r}")
    if selection not in ("random", "first"):
        raise ValueError(f"selection: must be 'random' or 'first', got {selection!r}")
    if normalize not in ("dataset", "group", None):
        raise ValueError(f"normalize: must be 'dataset', 'group' or None, got {normalize!r}")
    if grade_from not in ("solution", "answer"):
        raise ValueError(f"grade_from: must be 'solution' or 'answer', got {grade_from!r}")
    if clip is not None:
        harmonize_weights([0.0], clip=clip, normalize=None)  # validates the (low, high) pair


def build_dataset(
    samples: Union[PathLike, Sequence[Mapping[str, Any]]],
    lam: float = 2.0,
    samples_per_problem: Optional[int] = 2,
    clip: Optional[Tuple[float, float]] = (-2.0, 4.0),
    normalize: Optional[str] = "dataset",
    seed: int = 42,
    *,
    selection: str = "random",
    k: Optional[int] = None,
    tokenizer: Any = None,
    grader: Optional[Callable] = None,
    grade_from: str = "solution",
    format: str = "auto",
    out: Optional[PathLike] = None,
    llamafactory: Optional[PathLike] = None,
    template: Any = None,
) -> WeightedDataset:
    """Build O1-Pruner's weighted training set (method.md step 2), exactly
    as the public code's ``construct_dataset.py`` does by default.

    For every problem (in order of first appearance): Lbar_ref and Abar_ref
    over all its K samples; a seeded shuffle of its samples (one
    ``random.Random(seed)`` shared by all problems, shuffling each problem's
    list in turn, like the public code's ``random.seed(42)`` +
    ``random.shuffle``); the first `samples_per_problem` are kept;
    ``w = (Lbar_ref - L) / L + lam * (A - Abar_ref)``; clip; z-normalise over
    the kept samples. Computed by :func:`o1pruner.reference_stats`,
    :func:`o1pruner.length_harmonizing_reward` and
    :func:`o1pruner.harmonize_weights` (C core).

    Parameters
    ----------
    samples : path or list of dict
        Sample records (see :func:`load_samples` for the files accepted).
        Each needs ``problem``, ``ground_truth_answer``, ``solution``;
        ``length`` and ``correct`` are computed when absent (with
        `tokenizer` / `grader`). Grouped by ``problem_id`` (or, without ids,
        by `k` consecutive records, as in the public format).
    lam : float, default 2.0
        The accuracy weight lambda (paper: 2 for Marco-o1; the code used 5
        for QwQ).
    samples_per_problem : int or None, default 2
        m, the samples kept per problem (the public code's 2). A problem with
        fewer samples keeps all of them. None keeps all (no shuffle needed).
    clip : (low, high) or None, default (-2, 4)
        ``w <= low -> low``, ``w > high -> high``; None: no clipping.
    normalize : {"dataset", "group", None}, default "dataset"
        Z-normalisation over the whole training set (public code), within
        each problem, or none. Zero spread gives zeros (the public code
        would divide by zero).
    seed : int, default 42
        Seed of the shuffle (the public code's 42).
    selection : {"random", "first"}, default "random"
        "random": the seeded shuffle above; "first": the first m samples of
        each problem in file order.
    k : int, optional
        Samples per problem when records carry no ``problem_id`` (the public
        JSON format).
    tokenizer : optional
        Counts tokens of solutions that have no ``length``.
    grader : callable, optional
        Grades samples that have no ``correct``: ``grader(texts, golds)``.
        Default :mod:`o1pruner.grading` (``grade_responses`` on solutions,
        ``grade_many`` on answers).
    grade_from : {"solution", "answer"}, default "solution"
        Grade the whole solution with our extractor (last ``\\boxed{}``;
        method.md pitfalls), or the stored ``answer`` field as the public
        code does (its extractor took the first ``\\boxed{}``).
    format : str, default "auto"
        File format of a `samples` path (see :func:`load_samples`).
    out : path, optional
        Also write the records as JSONL.
    llamafactory : path, optional
        Also write the LLaMA-Factory weighted set (see
        :func:`o1pruner.io.write_llamafactory`), with `template` (default:
        the public code's training messages).

    Returns
    -------
    WeightedDataset

    Raises
    ------
    ValueError
        No samples, missing fields (naming the line or index), non-positive
        lengths, bad options.

    Examples
    --------
    >>> import o1pruner
    >>> samples = [
    ...     {"problem_id": 0, "problem": "1+1", "ground_truth_answer": "2", "solution": "s", "length": L, "correct": c}
    ...     for L, c in [(100, True), (300, True), (200, False), (400, True)]
    ... ]
    >>> ds = o1pruner.build_dataset(samples, samples_per_problem=None, normalize=None)
    >>> [round(r["weight"], 3) for r in ds]
    [2.0, 0.333, -1.25, 0.125]
    """
    _check_build_options(lam, samples_per_problem, selection, normalize, clip, grade_from)
    flat, order, offsets, lengths, correct = _prepare(samples, k, tokenizer, grader, grade_from, format)

    stats = reference_stats(lengths, correct, offsets=offsets)
    rng = random.Random(seed)
    keep: List[int] = []
    for g in range(len(order)):
        idx = list(range(int(offsets[g]), int(offsets[g + 1])))
        if samples_per_problem is not None:
            if selection == "random":
                rng.shuffle(idx)
            idx = idx[:samples_per_problem]
        keep.extend(idx)
    keep_a = np.asarray(keep, dtype=np.int64)
    lbar, abar = stats.per_sample()
    reward = length_harmonizing_reward(lengths[keep_a], correct[keep_a], lbar[keep_a], abar[keep_a], lam=float(lam))
    clipped = harmonize_weights(reward, clip=clip, normalize=None)
    weight = harmonize_weights(reward, clip=clip, normalize=normalize, group=stats.inverse[keep_a] if normalize == "group" else None)

    records = []
    for j, i in enumerate(keep):
        r = dict(flat[i])
        g = int(stats.inverse[i])
        L = lengths[i]
        r["correct"] = bool(correct[i])
        r["length"] = int(L) if float(L).is_integer() else float(L)
        r["ref_mean_length"] = float(stats.mean_length[g])
        r["ref_accuracy"] = float(stats.accuracy[g])
        r["n_samples"] = int(stats.count[g])
        r["reward"] = float(reward[j])
        r["weight"] = float(weight[j])
        records.append(r)
    problems = []
    for g, key in enumerate(order):
        first = flat[int(offsets[g])]
        p = {"problem_id": first["problem_id"], "ref_mean_length": float(stats.mean_length[g]),
             "ref_accuracy": float(stats.accuracy[g]), "n_samples": int(stats.count[g])}
        if "difficulty" in first:
            p["difficulty"] = first["difficulty"]
        problems.append(p)
    ds = WeightedDataset(
        records=records,
        problems=problems,
        weight_mean=float(np.mean(clipped)),
        weight_std=float(np.std(clipped)),
        params={"lam": float(lam), "samples_per_problem": samples_per_problem, "clip": None if clip is None else list(clip),
                "normalize": normalize, "seed": seed, "selection": selection, "grade_from": grade_from},
    )
    if out is not None:
        ds.to_jsonl(out)
    if llamafactory is not None:
        ds.to_llamafactory(llamafactory, template=template)
    return ds


def sft_shortest_dataset(
    samples: Union[PathLike, Sequence[Mapping[str, Any]]],
    n: int = 2,
    *,
    k: Optional[int] = None,
    tokenizer: Any = None,
    grader: Optional[Callable] = None,
    grade_from: str = "solution",
    format: str = "auto",
) -> WeightedDataset:
    """The paper's SFT baseline: for each problem, its `n` shortest correct
    samples, each with weight 1 (plain supervised fine-tuning). Problems
    with no correct sample contribute nothing; ties in length keep file order.

    Returns a :class:`WeightedDataset` (``reward`` is NaN-free: set to 1).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n: must be an int >= 1, got {n!r}")
    flat, order, offsets, lengths, correct = _prepare(samples, k, tokenizer, grader, grade_from, format)
    stats = reference_stats(lengths, correct, offsets=offsets)
    records = []
    for g in range(len(order)):
        idx = [i for i in range(int(offsets[g]), int(offsets[g + 1])) if correct[i]]
        idx.sort(key=lambda i: lengths[i])
        for i in idx[:n]:
            r = dict(flat[i])
            r.update(correct=True, length=int(lengths[i]) if float(lengths[i]).is_integer() else float(lengths[i]),
                     ref_mean_length=float(stats.mean_length[g]), ref_accuracy=float(stats.accuracy[g]),
                     n_samples=int(stats.count[g]), reward=1.0, weight=1.0)
            records.append(r)
    if not records:
        raise ValueError("samples: no correct sample in any problem, the SFT-shortest set is empty")
    problems = [{"problem_id": flat[int(offsets[g])]["problem_id"], "ref_mean_length": float(stats.mean_length[g]),
                 "ref_accuracy": float(stats.accuracy[g]), "n_samples": int(stats.count[g])} for g in range(len(order))]
    return WeightedDataset(records, problems, 1.0, 0.0, {"baseline": "sft_shortest", "n": n})
