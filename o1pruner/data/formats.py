"""The file formats of the tools researchers already use: the public
O1-Pruner code's sample files, vLLM's JSONL and LLaMA-Factory's
weighted-SFT files (readers check every record and name its line)."""

from __future__ import annotations

import json
import math
import os
import warnings
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from .io import FieldError, JSONLError, PathLike, Records, check_required, read_json, read_jsonl, write_json, write_jsonl
from .prompts import PUBLIC_SYSTEM_PROMPT, PUBLIC_TRAIN_TEMPLATE, as_template
from .records import as_problems

__all__ = [
    "PUBLIC_FIELDS",
    "group_by_problem",
    "check_k",
    "read_o1pruner_samples",
    "write_o1pruner_samples",
    "read_vllm_jsonl",
    "write_vllm_jsonl",
    "vllm_to_samples",
    "samples_to_vllm",
    "read_llamafactory",
    "write_llamafactory",
    "llamafactory_dataset_info",
]


PUBLIC_FIELDS = ("problem", "solution", "answer", "ground_truth_answer")


def read_o1pruner_samples(path: PathLike, k: int, *, require_answer: bool = True) -> List[Dict[str, Any]]:
    """Read the public O1-Pruner code's generated-sample JSON.

    That file (written by its ``inference.py``) is a JSON array in which each
    problem's K samples are consecutive; each item is the dataset item
    (``problem``, ``ground_truth_answer``, ...) plus the generated
    ``solution`` and the extracted ``answer``.

    Parameters
    ----------
    path : str or path-like
        A ``.json`` array (or a ``.jsonl`` file with one item per line).
    k : int
        Samples per problem (the public code's ``--K``).
    require_answer : bool, default True
        Require the ``answer`` field (the public code grades it). False
        accepts files that only have the solutions.

    Returns
    -------
    list of dict
        The items, each with ``problem_id`` (problem index, from 0) and
        ``sample_index`` (0..k-1) added; other fields are kept as they are.

    Raises
    ------
    JSONLError
        Not a JSON array, an item missing a field (naming the item index
        from 1 as its "line"), a length not a multiple of `k`, or a group of
        K items whose ``problem`` differs (the file is not K-consecutive).
    ValueError
        ``k < 1``.
    """
    k = check_k(k)
    path = os.fspath(path)
    if path.endswith(".jsonl"):
        data = list(read_jsonl(path))
    else:
        data = read_json(path)
    if not isinstance(data, list):
        raise JSONLError(path, None, f"expected a JSON array of samples, got {type(data).__name__}")
    if not data:
        raise JSONLError(path, None, "no samples (empty array)")
    if len(data) % k:
        raise JSONLError(
            path, None, f"holds {len(data)} samples, not a multiple of k={k}: K consecutive samples per problem are expected"
        )
    need = PUBLIC_FIELDS if require_answer else ("problem", "solution", "ground_truth_answer")
    out = []
    for i, item in enumerate(data):
        check_required(path, i + 1, item, need)
        g, j = divmod(i, k)
        if j and item["problem"] != data[g * k]["problem"]:
            raise JSONLError(
                path, i + 1,
                f"field 'problem' differs from item {g * k + 1}'s: with k={k} items {g * k + 1}..{g * k + k} "
                f"should be samples of one problem (wrong k?)",
                field="problem",
            )
        rec = dict(item)
        rec["problem_id"] = g
        rec["sample_index"] = j
        out.append(rec)
    return out


def write_o1pruner_samples(path: PathLike, samples: Sequence[Mapping[str, Any]], indent: Optional[int] = None) -> int:
    """Write samples as the public O1-Pruner generated-sample JSON (atomic).

    Samples are grouped by ``problem_id`` (in order of first appearance;
    without ids, the list must already be K-consecutive) and every problem
    must have the same number of samples K. Each item gets ``problem``,
    ``ground_truth_answer``, ``solution`` and ``answer`` (an answer of None
    is written as the public code's ``"None"``); other fields are kept.
    ``problem_id`` and ``sample_index`` are dropped (their order encodes them).

    Returns
    -------
    int
        K, the number of samples per problem, to pass to
        :func:`read_o1pruner_samples` (and the public scripts' ``--K``).
    """
    groups = group_by_problem(samples, where="samples")
    ks = {len(v) for v in groups.values()}
    if len(ks) != 1:
        raise ValueError(f"samples: every problem needs the same number of samples for this format, got counts {sorted(ks)}")
    items = []
    for recs in groups.values():
        for r in recs:
            item = {k: v for k, v in r.items() if k not in ("problem_id", "sample_index")}
            for f in ("problem", "ground_truth_answer", "solution"):
                if f not in item:
                    raise ValueError(f"samples: a record of problem {r.get('problem_id')!r} is missing field {f!r}")
            if item.get("answer") is None:
                item["answer"] = "None"
            items.append(item)
    write_json(path, items, indent=indent)
    return ks.pop()


def group_by_problem(samples: Sequence[Mapping[str, Any]], where: str) -> Dict[Any, List[Mapping[str, Any]]]:
    """Group records by problem_id keeping first-appearance order; records
    without an id are grouped by consecutive equal ``problem`` text."""
    if not len(samples):
        raise ValueError(f"{where}: empty")
    groups: Dict[Any, List[Mapping[str, Any]]] = {}
    auto = 0
    prev_problem = object()
    for i, r in enumerate(samples):
        if not isinstance(r, Mapping):
            raise TypeError(f"{where}[{i}]: expected a dict, got {type(r).__name__}")
        if "problem_id" in r and r["problem_id"] is not None:
            key = r["problem_id"]
            if isinstance(key, list):
                key = tuple(key)
        else:
            if "problem" not in r:
                raise ValueError(f"{where}[{i}]: missing field 'problem_id' (or 'problem' to group by)")
            if r["problem"] != prev_problem:
                auto += 1
                prev_problem = r["problem"]
            key = ("__auto__", auto)
        groups.setdefault(key, []).append(r)
    return groups


def check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k: expected an int, got {type(k).__name__}")
    if k < 1:
        raise ValueError(f"k: must be >= 1, got {k}")
    return int(k)


def read_vllm_jsonl(path: PathLike, *, skip_invalid: bool = False, torn_tail: str = "error") -> Records:
    """Read vLLM-style generation outputs: one JSON object per prompt,
    ``{"prompt": str, "outputs": [{"text": str, "token_ids": [int, ...]}, ...]}``
    (what ``json.dumps`` of a ``vllm.RequestOutput``'s prompt and outputs
    gives; other fields such as ``prompt_token_ids``, ``finish_reason`` or
    your own ``problem``/``ground_truth_answer`` are kept).

    ``token_ids`` is optional per output; when present it must be a list of
    ints. Errors name the file, line and field (e.g. ``outputs[2].text``).
    """
    return read_jsonl(path, required=("prompt", "outputs"), skip_invalid=skip_invalid, torn_tail=torn_tail, check=_check_vllm)


def _check_vllm(rec: Dict[str, Any]) -> None:
    if not isinstance(rec["prompt"], str):
        raise FieldError("prompt", f"field 'prompt' must be a string, got {type(rec['prompt']).__name__}")
    outs = rec["outputs"]
    if not isinstance(outs, list) or not outs:
        raise FieldError("outputs", "field 'outputs' must be a non-empty list")
    for j, o in enumerate(outs):
        if not isinstance(o, dict) or not isinstance(o.get("text"), str):
            raise FieldError(f"outputs[{j}].text", f"missing field 'outputs[{j}].text' (a string)")
        ids = o.get("token_ids")
        if ids is not None and not (isinstance(ids, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in ids)):
            raise FieldError(f"outputs[{j}].token_ids", f"field 'outputs[{j}].token_ids' must be a list of ints")


def write_vllm_jsonl(path: PathLike, records: Sequence[Mapping[str, Any]]) -> None:
    """Write vLLM-style records (``prompt`` + ``outputs``) as JSONL, atomically."""
    for i, r in enumerate(records):
        if "prompt" not in r or "outputs" not in r:
            raise ValueError(f"records[{i}]: needs fields 'prompt' and 'outputs'")
    write_jsonl(path, records)


def samples_to_vllm(samples: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Group sample records (one per generated solution) into vLLM-style
    records (one per problem, its samples as ``outputs``). The problem's
    fields (``problem_id``, ``problem``, ``ground_truth_answer``,
    ``difficulty``) ride along so :func:`vllm_to_samples` can undo it."""
    out = []
    for key, recs in group_by_problem(samples, where="samples").items():
        first = recs[0]
        if "prompt" not in first:
            raise ValueError(f"samples: problem {key!r} has no 'prompt' field")
        rec: Dict[str, Any] = {"prompt": first["prompt"]}
        for f in ("problem_id", "problem", "ground_truth_answer", "difficulty"):
            if f in first:
                rec[f] = first[f]
        outs = []
        for r in recs:
            o: Dict[str, Any] = {"text": r["solution"]}
            if r.get("token_ids") is not None:
                o["token_ids"] = list(r["token_ids"])
            outs.append(o)
        rec["outputs"] = outs
        out.append(rec)
    return out


def vllm_to_samples(
    records: Union[PathLike, Sequence[Mapping[str, Any]]],
    problems: Optional[Sequence[Mapping[str, Any]]] = None,
    template=None,
    tokenizer=None,
) -> List[Dict[str, Any]]:
    """Turn vLLM-style records into sample records (one per output).

    Each record is matched to its problem by its own ``problem`` and
    ``ground_truth_answer`` fields when it has them; otherwise by its
    ``prompt``, which must equal ``template`` rendered on one of `problems`
    (the same template and tokenizer used for sampling).

    Returns sample dicts with ``problem_id``, ``sample_index``, ``problem``,
    ``ground_truth_answer``, ``prompt``, ``solution`` and, when the output had
    token ids, ``token_ids`` and ``length`` (their count).
    """

    path = None
    if isinstance(records, (str, os.PathLike)):
        path = os.fspath(records)
        records = read_vllm_jsonl(path)
    by_prompt = None
    if problems is not None:

        probs = as_problems(problems)
        tpl = as_template(template)
        by_prompt = {tpl.render(p["problem"], tokenizer): p for p in probs}
    out = []
    for i, rec in enumerate(records):
        where = f"{path}: record {i + 1}" if path else f"records[{i}]"
        if "problem" in rec and "ground_truth_answer" in rec:
            prob = {"problem_id": rec.get("problem_id", i), "problem": rec["problem"], "ground_truth_answer": rec["ground_truth_answer"]}
            if "difficulty" in rec:
                prob["difficulty"] = rec["difficulty"]
        elif by_prompt is not None:
            prob = by_prompt.get(rec["prompt"])
            if prob is None:
                raise ValueError(f"{where}: its prompt matches no problem rendered with the template (different template or tokenizer?)")
        else:
            raise ValueError(f"{where}: missing fields 'problem' and 'ground_truth_answer'; pass problems= (and template=) to match by prompt")
        for j, o in enumerate(rec["outputs"]):
            s: Dict[str, Any] = {
                "problem_id": prob["problem_id"],
                "sample_index": j,
                "problem": prob["problem"],
                "ground_truth_answer": prob["ground_truth_answer"],
                "prompt": rec["prompt"],
                "solution": o["text"],
            }
            if "difficulty" in prob:
                s["difficulty"] = prob["difficulty"]
            if o.get("token_ids") is not None:
                s["token_ids"] = list(o["token_ids"])
                s["length"] = len(o["token_ids"])
            out.append(s)
    return out


def write_llamafactory(
    path: PathLike,
    records: Sequence[Mapping[str, Any]],
    template=None,
    weight_field: str = "weight",
) -> None:
    """Write a weighted training set in the LLaMA-Factory "sharegpt" format
    used by the public O1-Pruner code (its ``wsft`` stage):
    ``{"messages": [system, user, assistant], "weight": w}`` per record.

    Parameters
    ----------
    path : str or path-like
        ``.json`` writes one JSON array (as the public code's ``raw.json``),
        ``.jsonl`` one record per line. Written atomically.
    records : sequence of dict
        Needs ``problem``, ``solution`` and the weight field (e.g. the output
        of :func:`o1pruner.build_dataset`).
    template : PromptTemplate, str or None
        The prompt's system and user turns. None gives the public code's
        training messages exactly: system :data:`PUBLIC_SYSTEM_PROMPT`, user
        the bare problem. Pass the template you sampled with so that training
        sees the sampling prompt (method.md, pitfalls).
    weight_field : str, default "weight"

    See Also
    --------
    llamafactory_dataset_info : the ``dataset_info.json`` entry for this file.
    """

    tpl = PUBLIC_TRAIN_TEMPLATE if template is None else as_template(template)
    items = []
    warned = False
    for i, r in enumerate(records):
        for f in ("problem", "solution", weight_field):
            if f not in r or r[f] is None:
                raise ValueError(f"records[{i}]: missing field {f!r}")
        if not warned and isinstance(r.get("prompt"), str) and isinstance(r["problem"], str):
            warned = _warn_template_mismatch(tpl, r, i, template is None)
        w = float(r[weight_field])
        if not math.isfinite(w):
            raise ValueError(f"records[{i}]: field {weight_field!r} is not finite ({w})")
        msgs = tpl.messages(r["problem"]) + [{"role": "assistant", "content": r["solution"]}]
        items.append({"messages": msgs, "weight": w})
    p = os.fspath(path)
    if p.endswith(".jsonl"):
        write_jsonl(p, items)
    else:
        write_json(p, items)


def _warn_template_mismatch(tpl, rec: Mapping[str, Any], i: int, public: bool) -> bool:
    """Warn (once) when the training messages would not carry the prompt a
    sample was drawn with (its stored ``prompt``): the system turn or the
    user turn of `tpl` is not in it. A chat-formatted prompt contains both
    turns verbatim, so it passes. Returns True when it warned."""
    prompt = rec["prompt"]
    rendered = tpl.render(rec["problem"])
    if rendered == prompt:
        return False
    parts = [rendered] if tpl.fn is not None else [tpl.user_text(rec["problem"])] + ([tpl.system] if tpl.system else [])
    if all(p in prompt for p in parts):
        return False
    which = "the public code's template (system prompt + bare problem)" if public else "the template given"
    warnings.warn(
        f"records[{i}]: the sample was drawn with the prompt {prompt[:60]!r}, but the LLaMA-Factory messages use "
        f"{which}, which renders {rendered[:60]!r}: training would see another prompt than "
        "sampling did (method.md, pitfalls); pass the template you sampled with (template=, or --template/--system)",
        RuntimeWarning, stacklevel=3)
    return True


def read_llamafactory(path: PathLike) -> List[Dict[str, Any]]:
    """Read a LLaMA-Factory weighted set (JSON array or JSONL) back into
    ``{"system", "problem", "solution", "weight", "messages"}`` dicts.

    The user turn is returned as ``problem`` verbatim (with whatever template
    text it carries). Errors name the record and field.
    """
    p = os.fspath(path)
    if p.endswith(".jsonl"):
        items = list(read_jsonl(p, required=("messages", "weight")))
    else:
        items = read_json(p)
        if not isinstance(items, list):
            raise JSONLError(p, None, f"expected a JSON array, got {type(items).__name__}")
    out = []
    for i, it in enumerate(items):
        check_required(p, i + 1, it, ("messages", "weight"))
        msgs = it["messages"]
        if not isinstance(msgs, list) or not all(isinstance(m, dict) and "role" in m and "content" in m for m in msgs):
            raise JSONLError(p, i + 1, "field 'messages' must be a list of {role, content}", field="messages")
        roles = [m["role"] for m in msgs]
        if "user" not in roles or roles[-1] != "assistant":
            raise JSONLError(p, i + 1, f"field 'messages' needs a user turn and a final assistant turn, got roles {roles}", field="messages")
        system = next((m["content"] for m in msgs if m["role"] == "system"), None)
        user = [m["content"] for m in msgs if m["role"] == "user"][-1]
        w = it["weight"]
        if isinstance(w, bool) or not isinstance(w, (int, float)):
            raise JSONLError(p, i + 1, f"field 'weight' must be a number, got {type(w).__name__}", field="weight")
        out.append({"system": system, "problem": user, "solution": msgs[-1]["content"], "weight": float(w), "messages": msgs})
    return out


def llamafactory_dataset_info(name: str, file_name: str) -> Dict[str, Any]:
    """The ``dataset_info.json`` entry LLaMA-Factory needs to load a file
    written by :func:`write_llamafactory` (sharegpt formatting with a weight
    column, as in the public O1-Pruner repository)."""
    return {
        name: {
            "file_name": file_name,
            "formatting": "sharegpt",
            "columns": {"messages": "messages", "weight": "weight"},
            "tags": {
                "role_tag": "role",
                "content_tag": "content",
                "user_tag": "user",
                "assistant_tag": "assistant",
                "system_tag": "system",
            },
        }
    }
