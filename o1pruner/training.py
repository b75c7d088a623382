"""Off-policy fine-tuning of the built-in model (method.md step 3): O1-Pruner's
PPO-clip objective against a frozen reference, with a fixed lambda or the
dual ascent of method.md ("Going beyond"), and the SFT-shortest baseline,
with per-step logs, crash-safe checkpoints and exact resume."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import io as _io
from .objectives import ppo_clip_loss
from .prompts import as_template
from .rewards import harmonize_weights, length_harmonizing_reward

__all__ = [
    "TrainConfig",
    "Trainer",
    "SequenceFormat",
    "TinyLMGenerator",
    "EncodedSamples",
    "encode_samples",
    "lr_at",
    "latest_checkpoint",
]

PathLike = Union[str, "os.PathLike[str]"]

_RATIOS = ("sequence_mean", "token")
_SEQ_AGGREGATES = ("mean", "sum")
_TOKEN_AGGREGATES = ("token-mean", "bnpo", "grpo", "seq-mean-token-mean", "seq-mean-token-sum", "dr_grpo")
TRAIN_STATE_FORMAT = "o1pruner.trainer/1"


# ---- token sequences of the built-in model ----------------------------------------

class SequenceFormat:
    """How prompt and response texts become the token ids of a model: the
    one place that decides about BOS and EOS, shared by sampling
    (:class:`TinyLMGenerator`) and training (:class:`Trainer`), so the
    reference log-probs are those of the sampling distribution.

    Parameters
    ----------
    tokenizer : object
        ``encode(text) -> ids`` (e.g. :class:`o1pruner.tasks.CharTokenizer`
        or a Hugging Face tokenizer), with ``bos_token_id`` /
        ``eos_token_id`` when `add_bos` / `add_eos` are set.
    add_bos : bool, default True
        Prompt ids start with the tokenizer's BOS token.
    add_eos : bool, default True
        A response written as text gets the EOS token appended (a response
        given as sampled ``token_ids`` is used as is: it holds the stop token
        when generation stopped).
    """

    def __init__(self, tokenizer: Any, add_bos: bool = True, add_eos: bool = True):
        if tokenizer is None or not callable(getattr(tokenizer, "encode", None)):
            raise TypeError(f"tokenizer: needs an encode(text) method, got {type(tokenizer).__name__}")
        self.tokenizer = tokenizer
        self.add_bos = bool(add_bos)
        self.add_eos = bool(add_eos)
        self.bos = getattr(tokenizer, "bos_token_id", None) if add_bos else None
        self.eos = getattr(tokenizer, "eos_token_id", None)
        if add_bos and self.bos is None:
            raise ValueError("tokenizer: add_bos=True but the tokenizer has no bos_token_id")
        if add_eos and self.eos is None:
            raise ValueError("tokenizer: add_eos=True but the tokenizer has no eos_token_id")

    def _encode(self, text: str) -> List[int]:
        try:
            ids = self.tokenizer.encode(text, add_special_tokens=False)
        except TypeError:
            ids = self.tokenizer.encode(text)
        return [int(i) for i in (ids.ids if hasattr(ids, "ids") else ids)]

    def prompt_ids(self, prompt: str) -> List[int]:
        """Token ids of a rendered prompt (BOS first with `add_bos`)."""
        ids = self._encode(prompt)
        return ([int(self.bos)] if self.bos is not None else []) + ids

    def response_ids(self, text: str) -> List[int]:
        """Token ids of a response text (EOS last with `add_eos`)."""
        ids = self._encode(text)
        return ids + ([int(self.eos)] if self.add_eos else [])

    def to_dict(self) -> Dict[str, Any]:
        return {"tokenizer": type(self.tokenizer).__name__, "add_bos": self.add_bos, "add_eos": self.add_eos,
                "bos_token_id": self.bos, "eos_token_id": self.eos}


class TinyLMGenerator:
    """A :class:`~o1pruner.models.TinyLM` as the ``generate`` callable of
    :func:`o1pruner.presample` and :func:`o1pruner.evaluate`.

    ``gen(prompts, temperature=1.0, top_p=1.0, seed=0)`` (or
    ``gen.generate(...)``, through which :func:`o1pruner.evaluate` decodes
    greedily by default) returns one dict per
    prompt with ``text`` (stop token excluded) and ``token_ids`` (the
    generated ids, stop token included when generation stopped: the exact
    tokens to train on). Prompts are encoded by the same
    :class:`SequenceFormat` as the trainer uses.

    Parameters
    ----------
    model : TinyLM
    tokenizer : object
        Encodes prompts and decodes outputs (``encode``, ``decode``,
        ``eos_token_id``).
    add_bos : bool, default True
        Prompts start with BOS (must match how the model was trained).
    max_new_tokens : int, default 256
    batch_size : int, default 256
        Prompts decoded together (bounds the KV cache memory).
    """

    def __init__(self, model: Any, tokenizer: Any, *, add_bos: bool = True, max_new_tokens: int = 256,
                 batch_size: int = 256):
        if not callable(getattr(model, "generate", None)):
            raise TypeError(f"model: expected a TinyLM, got {type(model).__name__}")
        self.model = model
        self.tokenizer = tokenizer
        self.format = SequenceFormat(tokenizer, add_bos=add_bos, add_eos=False)
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 1:
            raise ValueError(f"max_new_tokens: must be an int >= 1, got {max_new_tokens!r}")
        self.max_new_tokens = int(max_new_tokens)
        self.batch_size = int(batch_size)

    def generate(self, prompts: Sequence[str], *, temperature: float = 1.0, top_p: float = 1.0,
                 seed: int = 0) -> List[Dict[str, Any]]:
        """Sample (``temperature > 0``) or decode greedily (``temperature=0``)
        one solution per prompt; see the class docstring."""
        ids = [self.format.prompt_ids(p) for p in prompts]
        g = self.model.generate(ids, max_new_tokens=self.max_new_tokens, temperature=temperature, top_p=top_p,
                                seed=int(seed) & 0x7FFFFFFF, batch_size=self.batch_size,
                                stop_token_id=self.format.eos, pad_token_id=0)
        out = []
        for b in range(len(prompts)):
            n = int(g.lengths[b])
            toks = g.tokens[b, :n].tolist()
            text_ids = toks[:-1] if g.stopped[b] else toks
            out.append({"text": self.tokenizer.decode(text_ids), "token_ids": toks})
        return out

    __call__ = generate


@dataclass
class EncodedSamples:
    """Training sequences: prompt + response ids, one row per record.

    Attributes
    ----------
    ids : list of ndarray of int64
        The whole sequence (prompt then response).
    prompt_lengths : ndarray of int64
        Prompt tokens of each sequence.
    response_lengths : ndarray of int64
        Response tokens kept (after truncation to `max_length`).
    truncated : ndarray of bool
        The response was cut to fit `max_length`.
    """

    ids: List[np.ndarray]
    prompt_lengths: np.ndarray
    response_lengths: np.ndarray
    truncated: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def digest(self) -> str:
        """SHA-256 of the token ids (checks that a resumed run trains on the same data)."""
        h = hashlib.sha256()
        for a, p in zip(self.ids, self.prompt_lengths):
            h.update(np.int64(p).tobytes())
            h.update(np.int64(len(a)).tobytes())
            h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
        return h.hexdigest()

    def batch(self, rows: Sequence[int], pad_to: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Right-padded ``(input_ids, attention_mask, targets)`` of some rows;
        targets are the next token on response positions, -100 elsewhere."""
        from .models import next_token_targets

        T = max(len(self.ids[i]) for i in rows)
        if pad_to is not None:
            T = max(T, pad_to)
        ids = np.zeros((len(rows), T), dtype=np.int64)
        mask = np.zeros((len(rows), T), dtype=np.int64)
        for j, i in enumerate(rows):
            a = self.ids[i]
            ids[j, : len(a)] = a
            mask[j, : len(a)] = 1
        targets = next_token_targets(ids, mask, prompt_lengths=self.prompt_lengths[list(rows)])
        return ids, mask, targets


def _record_prompt(r: Mapping[str, Any], tpl, i: int, where: str) -> str:
    if tpl is not None:
        text = r.get("problem")
        if not isinstance(text, str):
            raise ValueError(f"{_loc(where, i)}: missing field 'problem' (needed to render the prompt with template=)")
        return tpl.render(text)
    p = r.get("prompt")
    if not isinstance(p, str):
        raise ValueError(f"{_loc(where, i)}: missing field 'prompt' (pass template= to render it from 'problem')")
    return p


def encode_samples(
    records: Sequence[Mapping[str, Any]],
    fmt: SequenceFormat,
    *,
    template: Any = None,
    max_length: Optional[int] = None,
    use_token_ids: bool = True,
    where: str = "dataset",
) -> EncodedSamples:
    """Token sequences of sample records for training.

    Parameters
    ----------
    records : sequence of dict
        Each with the prompt (``prompt``, or ``problem`` rendered by
        `template`) and the response (``token_ids`` as sampled, or
        ``solution`` as text).
    fmt : SequenceFormat
    template : PromptTemplate, str or callable, optional
        Render prompts from ``problem`` instead of using the stored ``prompt``.
    max_length : int, optional
        Longest sequence (the model's context); longer responses are cut
        (the public code's cutoff) and counted in ``truncated``.
    use_token_ids : bool, default True
        Train on the stored ``token_ids`` when a record has them.
    where : str
        Name used in error messages.

    Raises
    ------
    ValueError
        A missing field, a response of zero tokens, a prompt that alone
        fills `max_length` (naming the record).
    """
    tpl = None if template is None else as_template(template)
    seqs, plen, rlen, trunc = [], [], [], []
    for i, r in enumerate(records):
        prompt = _record_prompt(r, tpl, i, where)
        p = fmt.prompt_ids(prompt)
        if len(p) == 0:
            raise ValueError(f"{_loc(where, i)}: the prompt encodes to no tokens")
        ids = r.get("token_ids") if use_token_ids else None
        if ids is not None:
            resp = [int(x) for x in ids]
        else:
            sol = r.get("solution")
            if not isinstance(sol, str):
                raise ValueError(f"{_loc(where, i)}: missing field 'solution' (or 'token_ids')")
            resp = fmt.response_ids(sol)
        if len(resp) == 0:
            raise ValueError(f"{_loc(where, i)}: the response has zero tokens; every training sample needs a response")
        cut = False
        if max_length is not None and len(p) + len(resp) > max_length:
            if len(p) >= max_length:
                raise ValueError(f"{_loc(where, i)}: the prompt has {len(p)} tokens, max_length is {max_length}: no room for a response")
            resp = resp[: max_length - len(p)]
            cut = True
        seqs.append(np.asarray(p + resp, dtype=np.int64))
        plen.append(len(p))
        rlen.append(len(resp))
        trunc.append(cut)
    if not seqs:
        raise ValueError(f"{where}: empty (no training sample)")
    return EncodedSamples(seqs, np.asarray(plen, np.int64), np.asarray(rlen, np.int64), np.asarray(trunc, bool))


# ---- configuration ------------------------------------------------------------------

@dataclass
class TrainConfig:
    """Settings of :class:`Trainer`. Defaults are the public O1-Pruner code's
    where it has one (method.md step 3), except the learning rate, which is
    for the small built-in model.

    Parameters
    ----------
    objective : {"ppo", "sft"}, default "ppo"
        "ppo": O1-Pruner's off-policy PPO-clip loss with the records'
        weights as advantages (:func:`o1pruner.ppo_clip_loss`). "sft":
        supervised fine-tuning, the mean negative log-likelihood per response
        token of the batch (the paper's SFT baseline; weights are ignored).
    epochs : int, default 1
    batch_size : int, default 32
        Sequences per optimizer step (the last batch of an epoch may be smaller).
    micro_batch_size : int or None
        Sequences per forward/backward; gradients are accumulated over the
        micro-batches of a step, with every loss normalised by batch-level
        counts, so the step is the same as with one micro-batch.
    lr : float, default 1e-4
        Peak learning rate (the public code: 2e-7 / 2e-6 for 7B / 32B models).
    warmup_ratio : float, default 0.1
        Linear warmup over ``ceil(warmup_ratio * total_steps)`` steps, then a
        cosine decay to ``min_lr_ratio * lr``; Hugging Face's
        ``get_cosine_schedule_with_warmup`` when ``min_lr_ratio = 0``
        (so the first step has lr 0 when there is a warmup).
    min_lr_ratio : float, default 0.0
    max_grad_norm : float or None, default 10.0
        Global gradient-norm clip (the public code's 10).
    betas, adam_eps, weight_decay
        AdamW (torch defaults, as the public code; no weight decay).
    eps_low, eps_high : float, default 0.2
        PPO clip range ``[1 - eps_low, 1 + eps_high]``.
    ratio : {"sequence_mean", "token"}, default "sequence_mean"
        The importance ratio of :func:`o1pruner.ppo_clip_loss`: the public
        code's length-normalised sequence ratio, or per token (TRL / verl).
    aggregate : str or None
        The loss aggregation (see :func:`o1pruner.ppo_clip_loss`); None: its
        default for the ratio mode.
    dual_clip, logratio_clamp : float or None
        As in :func:`o1pruner.ppo_clip_loss`.
    lam : None, float or "auto", default None
        None: train with the records' ``weight`` as given. A number: recompute
        every weight with this lambda (reward -> clip -> normalisation, from
        the records' ``length``, ``correct``, ``ref_mean_length``,
        ``ref_accuracy``). "auto": dual ascent on lambda (method.md "Going
        beyond"), starting from `lam_init`: after each step
        ``lam <- max(0, lam + lam_lr * (Abar_ref - Ahat_theta))``, with
        ``Ahat_theta = sum_i r_i A_i / sum_i r_i`` over the training samples
        (self-normalised importance weights, ``r_i`` the ratio
        pi_theta(y_i|x_i) / pi_ref(y_i|x_i) of each sample as of the last step
        it was in a batch, 1 before) and ``Abar_ref`` the same estimate at
        ``r = 1`` (the reference's accuracy on those samples); the weights are
        recomputed with the new lambda for the next step.
    lam_init : float or None
        Start of the dual ascent; None: the dataset's lambda (else 2).
    lam_lr : float, default 5.0
        eta, the dual step size (lambda per unit of accuracy shortfall).
    lam_max : float or None
        Upper bound on lambda (None: none).
    dual_ratio : {"sequence", "sequence_mean"}, default "sequence"
        r_i of the accuracy estimate: the whole-sequence ratio (the true
        importance weight) or the length-normalised one of the loss.
    dual_estimator : {"global", "problem"}, default "global"
        "global": the formula above over all samples (method.md). "problem":
        self-normalise within each problem, then average over problems (an
        estimate of the mean per-problem accuracy that does not let problems
        with larger ratios count more).
    clip : (low, high) or None, default (-2, 4)
    normalize : {"dataset", "group", None}, default "dataset"
        Used when weights are recomputed (`lam` not None); taken from the
        dataset's construction when it is a :class:`~o1pruner.WeightedDataset`.
    seed : int, default 0
        Seed of the data order (a permutation drawn per epoch).
    checkpoint_every : int or None, default None
        Steps between checkpoints (with an output folder); a checkpoint is
        always written at the end of training.
    keep_checkpoints : int, default 1
        Checkpoints kept (older ones are deleted once a new one is complete).
    max_length : int or None
        Longest training sequence (default: the model's context).
    """

    objective: str = "ppo"
    epochs: int = 1
    batch_size: int = 32
    micro_batch_size: Optional[int] = None
    lr: float = 1e-4
    warmup_ratio: float = 0.1
    min_lr_ratio: float = 0.0
    max_grad_norm: Optional[float] = 10.0
    betas: Tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    weight_decay: float = 0.0
    eps_low: float = 0.2
    eps_high: float = 0.2
    ratio: str = "sequence_mean"
    aggregate: Optional[str] = None
    dual_clip: Optional[float] = None
    logratio_clamp: Optional[float] = None
    lam: Union[None, float, str] = None
    lam_init: Optional[float] = None
    lam_lr: float = 5.0
    lam_max: Optional[float] = None
    dual_ratio: str = "sequence"
    dual_estimator: str = "global"
    clip: Optional[Tuple[float, float]] = (-2.0, 4.0)
    normalize: Optional[str] = "dataset"
    seed: int = 0
    checkpoint_every: Optional[int] = None
    keep_checkpoints: int = 1
    max_length: Optional[int] = None

    def __post_init__(self) -> None:
        def pos_int(name, allow_none=False):
            v = getattr(self, name)
            if v is None and allow_none:
                return
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name}: must be an int >= 1{' or None' if allow_none else ''}, got {v!r}")
            setattr(self, name, int(v))

        def number(name, lo=None, hi=None, lo_open=False, hi_open=False, allow_none=False):
            v = getattr(self, name)
            if v is None and allow_none:
                return
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
                raise ValueError(f"{name}: must be a finite number, got {v!r}")
            v = float(v)
            bad = (lo is not None and (v <= lo if lo_open else v < lo)) or (hi is not None and (v >= hi if hi_open else v > hi))
            if bad:
                lb = "(" if lo_open else "["
                rb = ")" if hi_open else "]"
                raise ValueError(f"{name}: must be in {lb}{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}{rb}, got {v!r}")
            setattr(self, name, v)

        if self.objective not in ("ppo", "sft"):
            raise ValueError(f"objective: must be 'ppo' or 'sft', got {self.objective!r}")
        for n in ("epochs", "batch_size", "keep_checkpoints"):
            pos_int(n)
        for n in ("micro_batch_size", "checkpoint_every", "max_length"):
            pos_int(n, allow_none=True)
        number("lr", 0, lo_open=True)
        number("warmup_ratio", 0, 1, hi_open=True)
        number("min_lr_ratio", 0, 1)
        number("max_grad_norm", 0, lo_open=True, allow_none=True)
        number("adam_eps", 0, lo_open=True)
        number("weight_decay", 0)
        number("eps_low", 0, 1, lo_open=True, hi_open=True)
        number("eps_high", 0, 1, lo_open=True, hi_open=True)
        number("dual_clip", 1, lo_open=True, allow_none=True)
        number("logratio_clamp", 0, lo_open=True, allow_none=True)
        if not isinstance(self.betas, (tuple, list)) or len(self.betas) != 2 or not all(
                isinstance(b, (int, float)) and 0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas: must be a pair of numbers in [0, 1), got {self.betas!r}")
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        if self.ratio not in _RATIOS:
            raise ValueError(f"ratio: must be one of {_RATIOS}, got {self.ratio!r}")
        allowed = _SEQ_AGGREGATES if self.ratio == "sequence_mean" else _TOKEN_AGGREGATES
        if self.aggregate is not None and self.aggregate not in allowed:
            raise ValueError(f"aggregate: with ratio={self.ratio!r} must be one of {allowed} or None, got {self.aggregate!r}")
        if isinstance(self.lam, str):
            if self.lam != "auto":
                raise ValueError(f"lam: must be None, a number >= 0 or 'auto', got {self.lam!r}")
        elif self.lam is not None:
            number("lam", 0)
        number("lam_init", 0, allow_none=True)
        number("lam_lr", 0, lo_open=True)
        number("lam_max", 0, allow_none=True)
        if self.dual_ratio not in ("sequence", "sequence_mean"):
            raise ValueError(f"dual_ratio: must be 'sequence' or 'sequence_mean', got {self.dual_ratio!r}")
        if self.dual_estimator not in ("global", "problem"):
            raise ValueError(f"dual_estimator: must be 'global' or 'problem', got {self.dual_estimator!r}")
        if self.clip is not None:
            if not isinstance(self.clip, (tuple, list)) or len(self.clip) != 2 or not all(
                    isinstance(c, (int, float)) and math.isfinite(c) for c in self.clip) or not self.clip[0] < self.clip[1]:
                raise ValueError(f"clip: must be None or a pair (low, high) with low < high, got {self.clip!r}")
            self.clip = (float(self.clip[0]), float(self.clip[1]))
        if self.normalize not in ("dataset", "group", None):
            raise ValueError(f"normalize: must be 'dataset', 'group' or None, got {self.normalize!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise ValueError(f"seed: must be an int, got {self.seed!r}")
        self.seed = int(self.seed)

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["betas"] = list(self.betas)
        d["clip"] = None if self.clip is None else list(self.clip)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"config: unknown settings {unknown}")
        kw = dict(d)
        for k in ("betas", "clip"):
            if isinstance(kw.get(k), list):
                kw[k] = tuple(kw[k])
        return cls(**kw)


def lr_at(step: int, total_steps: int, lr: float, warmup_ratio: float = 0.1, min_lr_ratio: float = 0.0) -> float:
    """Learning rate of optimizer step `step` (0-based): linear warmup over
    ``ceil(warmup_ratio * total_steps)`` steps, then cosine to
    ``min_lr_ratio * lr`` at the end (Hugging Face's
    ``get_cosine_schedule_with_warmup`` when ``min_lr_ratio = 0``).

    >>> [round(lr_at(s, 10, 1.0, 0.2), 3) for s in range(10)]
    [0.0, 0.5, 1.0, 0.962, 0.854, 0.691, 0.5, 0.309, 0.146, 0.038]
    """
    warm = math.ceil(warmup_ratio * total_steps)
    if step < warm:
        return lr * step / max(1, warm)
    progress = (step - warm) / max(1, total_steps - warm)
    cos = max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
    return lr * (min_lr_ratio + (1.0 - min_lr_ratio) * cos)


# ---- datasets ---------------------------------------------------------------------------

class _FileLoc(str):
    """The name of a JSONL file for messages, with the line number (from 1)
    of each of its records: record i is reported as ``file:line``, the
    convention of every reader of the package (not ``file[i]``)."""

    lines: List[int]


def _loc(where: str, i: int) -> str:
    """``file:line`` of record `i` of a file, else ``where[i]`` (records
    passed as a list)."""
    lines = getattr(where, "lines", None)
    if lines is not None and 0 <= i < len(lines):
        return f"{where}:{lines[i]}"
    return f"{where}[{i}]"


def _as_records(data: Any) -> Tuple[List[Dict[str, Any]], Dict[str, Any], str]:
    """(records, construction params, name for messages)."""
    from .pipeline import WeightedDataset

    if isinstance(data, WeightedDataset):
        return [dict(r) for r in data.records], dict(data.params), "dataset"
    if isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        read = _io.read_jsonl(path)
        where = _FileLoc(path)
        where.lines = list(read.lines)
        return list(read), {}, where
    if isinstance(data, Mapping) or isinstance(data, (bytes, str)):
        raise TypeError(f"dataset: expected a WeightedDataset, a list of records or a JSONL path, got {type(data).__name__}")
    try:
        recs = [dict(r) for r in data]
    except (TypeError, ValueError):
        raise TypeError(f"dataset: expected a WeightedDataset, a list of records or a JSONL path, got {type(data).__name__}") from None
    return recs, {}, "dataset"


def _finite_field(recs, name, where, positive=False) -> np.ndarray:
    out = np.empty(len(recs), dtype=np.float64)
    for i, r in enumerate(recs):
        v = r.get(name)
        if v is None:
            raise ValueError(f"{_loc(where, i)}: missing field {name!r}")
        if isinstance(v, bool) and name != "correct":
            raise ValueError(f"{_loc(where, i)}: field {name!r} must be a number, got {v!r}")
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"{_loc(where, i)}: field {name!r} must be a number, got {v!r}") from None
        if not math.isfinite(x):
            raise ValueError(f"{_loc(where, i)}: field {name!r} is {x} (must be finite)")
        if positive and x <= 0:
            raise ValueError(f"{_loc(where, i)}: field {name!r} must be > 0, got {v!r}")
        out[i] = x
    return out


# ---- checkpoints ----------------------------------------------------------------------------

def latest_checkpoint(out_dir: PathLike) -> Optional[str]:
    """Folder of the last complete checkpoint under ``out_dir/checkpoints``,
    or None. Completeness is what the ``LATEST`` pointer says: it is
    replaced atomically only after the checkpoint it names is fully written."""
    ck = os.path.join(os.fspath(out_dir), "checkpoints")
    ptr = os.path.join(ck, "LATEST")
    if not os.path.exists(ptr):
        return None
    info = _io.read_json(ptr)
    path = os.path.join(ck, info["dir"])
    if not os.path.isdir(path):
        raise ValueError(f"{ptr}: names {info['dir']!r}, which does not exist")
    return path


def _fsync_tree(folder: str) -> None:
    for name in os.listdir(folder):
        p = os.path.join(folder, name)
        if os.path.isfile(p):
            with open(p, "rb") as f:
                os.fsync(f.fileno())
    _io._fsync_dir(folder)


# ---- the trainer -------------------------------------------------------------------------------

class Trainer:
    """Fine-tune a :class:`~o1pruner.models.TinyLM` on a weighted dataset with
    O1-Pruner's off-policy PPO-clip objective (or plain SFT).

    The reference log-probs are computed once, before the first step, from
    the model as given (or `ref_model`): the per-sequence mean log-prob for
    ``ratio="sequence_mean"``, the token log-probs for ``ratio="token"``,
    and the whole-sequence log-prob for the dual ascent. The model is trained
    in place.

    Parameters
    ----------
    model : TinyLM
        The policy, initialised as the reference (the model that sampled the
        data).
    dataset : WeightedDataset, list of dict or path
        Training records (from :func:`o1pruner.build_dataset` or
        :func:`o1pruner.sft_shortest_dataset`, or their JSONL): each with a
        prompt (``prompt``, or ``problem`` and `template`), a response
        (``token_ids`` or ``solution``) and, for ``objective="ppo"``, a
        finite ``weight`` (or the fields to recompute it, see
        ``TrainConfig.lam``).
    tokenizer : object
        Encodes prompts and solutions (e.g. :class:`o1pruner.tasks.CharTokenizer`).
    config : TrainConfig, optional
        Settings; keyword arguments override single fields
        (``Trainer(model, ds, tok, lr=3e-4, epochs=2)``).
    out_dir : path, optional
        Where logs (``train_log.jsonl``), the reference log-probs cache,
        checkpoints (``checkpoints/step-NNNNNN`` + ``checkpoints/LATEST``) and
        the final model (``model/``) go. Without it nothing is written.
    ref_model : TinyLM, optional
        The frozen reference, if not the model as given.
    template : optional
        Render prompts from ``problem`` instead of the records' ``prompt``.
    add_bos : bool, default True
        Prompts start with BOS (as :class:`TinyLMGenerator` samples them).
    progress : bool, default True
        A tqdm progress bar.

    Attributes
    ----------
    history : list of dict
        One entry per step: ``step``, ``epoch``, ``loss``, ``clip_fraction``,
        ``dual_clip_fraction``, ``approx_kl``, ``ratio_mean``, ``ratio_min``,
        ``ratio_max``, ``lam``, ``acc_estimate`` (Ahat_theta, with
        ``lam="auto"``), ``lr``, ``grad_norm``, ``tokens``, ``seconds``.
    lam : float or None
        Current lambda (None when the records' weights are used as given).

    Raises
    ------
    ValueError
        An empty dataset, a record without a needed field, a non-finite
        weight, a response of zero tokens, bad settings (each naming the
        record or the setting).

    Examples
    --------
    >>> trainer = Trainer(model, ds, tokenizer, lr=1e-4, epochs=2, out_dir="run")  # doctest: +SKIP
    >>> history = trainer.train()                                                # doctest: +SKIP
    """

    def __init__(
        self,
        model: Any,
        dataset: Any,
        tokenizer: Any,
        config: Optional[TrainConfig] = None,
        *,
        out_dir: Optional[PathLike] = None,
        ref_model: Any = None,
        template: Any = None,
        add_bos: bool = True,
        progress: bool = True,
        **overrides: Any,
    ):
        from .models import TinyLM

        if not isinstance(model, TinyLM):
            raise TypeError(f"model: expected an o1pruner.models.TinyLM, got {type(model).__name__} "
                            "(for PyTorch / Hugging Face models see o1pruner.hf.O1PrunerTrainer)")
        if ref_model is not None and not isinstance(ref_model, TinyLM):
            raise TypeError(f"ref_model: expected an o1pruner.models.TinyLM, got {type(ref_model).__name__}")
        if config is None:
            config = TrainConfig(**overrides)
        elif overrides:
            d = config.to_dict()
            d.update(overrides)
            config = TrainConfig.from_dict(d)
        elif not isinstance(config, TrainConfig):
            raise TypeError(f"config: expected a TrainConfig, got {type(config).__name__}")
        recs, params, where = _as_records(dataset)
        if not recs:
            raise ValueError(f"{where}: empty (no training sample)")
        if params:  # weights are recomputed the way the dataset was built
            if "clip" in params and "clip" not in overrides:
                config.clip = None if params["clip"] is None else tuple(params["clip"])
            if "normalize" in params and "normalize" not in overrides:
                config.normalize = params["normalize"]
        self.config = config
        self.model = model
        self.tokenizer = tokenizer
        self.out_dir = None if out_dir is None else os.fspath(out_dir)
        self.progress = progress
        self.records = recs
        self._where = where
        self.format = SequenceFormat(tokenizer, add_bos=add_bos, add_eos=True)
        ctx = model.config.max_position_embeddings
        max_len = ctx if config.max_length is None else min(config.max_length, ctx)
        self.data = encode_samples(recs, self.format, template=template, max_length=max_len, where=where)
        vocab = model.config.vocab_size
        for i, a in enumerate(self.data.ids):
            if a.min() < 0 or a.max() >= vocab:
                raise ValueError(f"{_loc(where, i)}: token id {int(a.max() if a.max() >= vocab else a.min())} is outside the model's vocabulary [0, {vocab})")
        if self.data.truncated.any():
            warnings.warn(f"{where}: {int(self.data.truncated.sum())} response(s) cut to max_length={max_len} tokens",
                          RuntimeWarning, stacklevel=2)
        n = len(self.data)
        self._setup_weights(recs, params)
        # problems (for the per-problem dual estimator)
        keys = [json.dumps(r.get("problem_id", i), sort_keys=True, default=str) for i, r in enumerate(recs)]
        uniq = {k: j for j, k in enumerate(dict.fromkeys(keys))}
        self._group = np.array([uniq[k] for k in keys], dtype=np.int64)
        self.steps_per_epoch = -(-n // config.batch_size)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.history: List[Dict[str, Any]] = []
        self.step = 0
        #: the step of the checkpoint :meth:`train` resumed from (None: a fresh start)
        self.resumed_step: Optional[int] = None
        self._rng = np.random.default_rng(config.seed)
        self._perm: Optional[np.ndarray] = None
        self._perm_epoch = -1
        self._ref_model = ref_model
        self._ref: Optional[Dict[str, np.ndarray]] = None
        self._log_ratio = np.zeros(n, dtype=np.float64)  # latest log r_i of each sample (dual ascent)
        self._appender = None

    # ---- weights and lambda ----------------------------------------------------------

    def _setup_weights(self, recs, params) -> None:
        cfg = self.config
        where = self._where
        n = len(recs)
        self.lam: Optional[float] = None
        self._fields = None
        if cfg.objective == "sft":
            self._weights = np.ones(n, dtype=np.float64)
            if cfg.lam is not None:
                raise ValueError("lam: only for objective='ppo' (SFT has no weights)")
            return
        if cfg.lam is None:
            self._weights = _finite_field(recs, "weight", where)
            return
        L = _finite_field(recs, "length", where, positive=True)
        A = _finite_field(recs, "correct", where)
        if np.any((A != 0) & (A != 1)):
            i = int(np.argmax((A != 0) & (A != 1)))
            raise ValueError(f"{_loc(where, i)}: field 'correct' must be a boolean, got {recs[i]['correct']!r}")
        Lbar = _finite_field(recs, "ref_mean_length", where, positive=True)
        Abar = _finite_field(recs, "ref_accuracy", where)
        self._fields = (L, A, Lbar, Abar)
        if cfg.lam == "auto":
            lam0 = cfg.lam_init if cfg.lam_init is not None else float(params.get("lam", 2.0))
        else:
            lam0 = float(cfg.lam)
        self.lam = float(lam0)
        self._weights = self.weights_for(self.lam)

    def weights_for(self, lam: float) -> np.ndarray:
        """The training weights with accuracy weight `lam`: reward
        ``(Lbar - L)/L + lam (A - Abar)``, clipped and normalised as
        configured (needs the records' length/correct/reference fields)."""
        if self._fields is None:
            raise ValueError("lam: the weights are fixed (the records' 'weight'); set TrainConfig.lam to recompute them")
        L, A, Lbar, Abar = self._fields
        r = length_harmonizing_reward(L, A, Lbar, Abar, lam=float(lam))
        grp = self._group if self.config.normalize == "group" else None
        return harmonize_weights(r, clip=self.config.clip, normalize=self.config.normalize, group=grp)

    def accuracy_estimate(self, log_ratio: Optional[np.ndarray] = None) -> float:
        """Ahat_theta: the policy's accuracy on the training prompts, estimated
        off-policy from the reference samples with self-normalised importance
        weights (``TrainConfig.dual_estimator``). With ``log_ratio = 0`` it
        is the reference's own accuracy on these samples (Abar_ref)."""
        if self._fields is None:
            A = _finite_field(self.records, "correct", self._where)
        else:
            A = self._fields[1]
        lr = self._log_ratio if log_ratio is None else np.asarray(log_ratio, dtype=np.float64)
        if self.config.dual_estimator == "global":
            w = np.exp(lr - lr.max())  # self-normalised: the common factor cancels
            return float(np.dot(w, A) / w.sum())
        G = int(self._group.max()) + 1
        gmax = np.full(G, -np.inf)
        np.maximum.at(gmax, self._group, lr)
        w = np.exp(lr - gmax[self._group])
        num = np.bincount(self._group, weights=w * A, minlength=G)
        den = np.bincount(self._group, weights=w, minlength=G)
        return float(np.mean(num / den))

    # ---- reference log-probs --------------------------------------------------------------

    def _chunk(self) -> int:
        return self.config.micro_batch_size or self.config.batch_size

    def compute_reference(self) -> Dict[str, np.ndarray]:
        """Reference log-probs of every training sequence (computed once):
        ``mean`` and ``sum`` per sequence (float64) and the token log-probs
        (``tokens``, float32, concatenated; ``offsets`` delimit sequences)."""
        if self._ref is not None:
            return self._ref
        model = self._ref_model if self._ref_model is not None else self.model
        n = len(self.data)
        means = np.empty(n, dtype=np.float64)
        sums = np.empty(n, dtype=np.float64)
        offsets = np.zeros(n + 1, dtype=np.int64)
        offsets[1:] = np.cumsum(self.data.response_lengths)
        toks = np.empty(int(offsets[-1]), dtype=np.float32)
        order = np.argsort([len(a) for a in self.data.ids], kind="stable")  # similar lengths together
        chunk = max(self._chunk(), 32)
        for s in range(0, n, chunk):
            rows = order[s: s + chunk].tolist()
            ids, mask, tg = self.data.batch(rows)
            lp = model.logprobs(ids, mask, tg)
            valid = tg != -100
            for j, i in enumerate(rows):
                v = lp[j][valid[j]]
                toks[offsets[i]: offsets[i + 1]] = v
                sums[i] = float(np.sum(v, dtype=np.float64))
                means[i] = sums[i] / len(v)
        if not np.all(np.isfinite(toks)):
            raise ValueError("reference: non-finite log-probs (a token of probability 0 under the reference?)")
        self._ref = {"mean": means, "sum": sums, "tokens": toks, "offsets": offsets}
        return self._ref

    def _ref_path(self) -> Optional[str]:
        return None if self.out_dir is None else os.path.join(self.out_dir, "reference_logprobs.npz")

    def _load_or_compute_reference(self) -> None:
        path = self._ref_path()
        model = self._ref_model if self._ref_model is not None else self.model
        digest = self.data.digest() + ":" + hashlib.sha256(model.flat_parameters.tobytes()).hexdigest()
        if path is not None and os.path.exists(path):
            with np.load(path) as z:
                if str(z["digest"]) == digest and "tokens" in z:
                    self._ref = {k: z[k] for k in ("mean", "sum", "tokens", "offsets")}
                    return
        self.compute_reference()
        if path is not None:
            def write(f):
                np.savez(f, digest=np.array(digest), **self._ref)

            _io.atomic_write(path, write, mode="wb")

    # ---- one step ----------------------------------------------------------------------------

    def _batch_rows(self, step: int) -> Tuple[int, List[int]]:
        epoch, k = divmod(step, self.steps_per_epoch)
        if self._perm_epoch != epoch:
            self._perm = self._rng.permutation(len(self.data))
            self._perm_epoch = epoch
        bs = self.config.batch_size
        return epoch, self._perm[k * bs: (k + 1) * bs].tolist()

    def _ref_tokens(self, rows, T, targets) -> np.ndarray:
        ref = self._ref
        out = np.zeros((len(rows), T), dtype=np.float32)
        valid = targets != -100
        for j, i in enumerate(rows):
            out[j][valid[j]] = ref["tokens"][ref["offsets"][i]: ref["offsets"][i + 1]]
        return out

    def _train_step(self, step: int) -> Dict[str, Any]:
        cfg = self.config
        t0 = time.perf_counter()
        epoch, rows = self._batch_rows(step)
        lam_used = self.lam
        B = len(rows)
        resp = self.data.response_lengths[rows]
        N = int(resp.sum())
        max_resp = int(resp.max())
        T_batch = max(len(self.data.ids[i]) for i in rows)
        mb = cfg.micro_batch_size or B
        w_all = self._weights
        model = self.model
        model.zero_grad()
        agg = cfg.aggregate or ("mean" if cfg.ratio == "sequence_mean" else "token-mean")
        loss_total = 0.0
        # statistics merged over micro-batches
        cnt = 0
        clip_sum = dual_sum = kl_sum = ratio_sum = 0.0
        rmin, rmax = math.inf, -math.inf
        ref = self._ref
        for s in range(0, B, mb):
            sub = rows[s: s + mb]
            b = len(sub)
            ids, mask, tg = self.data.batch(sub, pad_to=T_batch)
            valid = tg != -100
            try:
                lp = model.forward(ids, mask, tg)
            except ValueError as e:  # the core refuses non-finite logits
                if "non-finite" not in str(e):
                    raise
                lp = None
            if lp is None or not np.isfinite(lp[valid]).all():
                raise FloatingPointError(f"policy: non-finite log-probs at step {step + 1} (the model diverged; "
                                         "lower lr, or resume from the last checkpoint)")
            # the sampled sequence's log-ratio, kept for the dual ascent
            lp64 = np.where(valid, lp, 0.0).astype(np.float64)
            seq_sum = lp64.sum(1)
            if cfg.dual_ratio == "sequence":
                self._log_ratio[sub] = seq_sum - ref["sum"][sub]
            else:
                self._log_ratio[sub] = seq_sum / resp[s: s + b] - ref["mean"][sub]
            if cfg.objective == "sft":
                grad = np.where(valid, np.float32(-1.0 / N), np.float32(0.0)).astype(np.float32)
                loss_total += -float(lp64.sum()) / N
                st = ppo_clip_loss(lp, ref["mean"][sub], np.ones(b), valid, cfg.eps_low, cfg.eps_high,
                                   "sequence_mean", "sum").stats
            else:
                adv = w_all[sub]
                if cfg.ratio == "sequence_mean":
                    res = ppo_clip_loss(lp, ref["mean"][sub], adv, valid, cfg.eps_low, cfg.eps_high,
                                        "sequence_mean", "sum", cfg.dual_clip, cfg.logratio_clamp)
                    scale = 1.0 / B if agg == "mean" else 1.0
                else:
                    rt = self._ref_tokens(sub, ids.shape[1], tg)
                    if agg in ("token-mean", "bnpo"):
                        sub_agg, scale = "seq-mean-token-sum", b / N
                    elif agg in ("grpo", "seq-mean-token-mean"):
                        sub_agg, scale = agg, b / B
                    elif agg == "seq-mean-token-sum":
                        sub_agg, scale = agg, b / B
                    else:  # dr_grpo: sum / (B * completion length of the batch)
                        sub_agg, scale = "seq-mean-token-sum", b / (B * max_resp)
                    res = ppo_clip_loss(lp, rt, adv, valid, cfg.eps_low, cfg.eps_high, "token", sub_agg,
                                        cfg.dual_clip, cfg.logratio_clamp)
                grad = res.grad * np.float32(scale)
                loss_total += res.loss * scale
                st = res.stats
            model.backward(grad)
            c = st.count
            if c:
                cnt += c
                clip_sum += st.clip_fraction * c
                dual_sum += st.dual_clip_fraction * c
                kl_sum += st.approx_kl * c
                ratio_sum += st.ratio_mean * c
                rmin = min(rmin, st.ratio_min)
                rmax = max(rmax, st.ratio_max)
        lr = lr_at(step, self.total_steps, cfg.lr, cfg.warmup_ratio, cfg.min_lr_ratio)
        gnorm = model.step(lr=lr, betas=cfg.betas, eps=cfg.adam_eps, weight_decay=cfg.weight_decay,
                           max_grad_norm=cfg.max_grad_norm)
        log: Dict[str, Any] = {
            "step": step + 1,
            "epoch": epoch,
            "loss": float(loss_total),
            "clip_fraction": clip_sum / cnt if cnt else 0.0,
            "dual_clip_fraction": dual_sum / cnt if cnt else 0.0,
            "approx_kl": kl_sum / cnt if cnt else 0.0,
            "ratio_mean": ratio_sum / cnt if cnt else 1.0,
            "ratio_min": rmin if cnt else 1.0,
            "ratio_max": rmax if cnt else 1.0,
            "lam": lam_used,
            "acc_estimate": None,
            "acc_reference": None,
            "lr": lr,
            "grad_norm": float(gnorm),
            "sequences": B,
            "tokens": N,
        }
        if cfg.lam == "auto":
            ahat = self.accuracy_estimate()
            target = self.accuracy_estimate(np.zeros_like(self._log_ratio))
            new = max(0.0, self.lam + cfg.lam_lr * (target - ahat))
            if cfg.lam_max is not None:
                new = min(new, cfg.lam_max)
            self.lam = new
            self._weights = self.weights_for(new)
            log["acc_estimate"] = ahat
            log["acc_reference"] = target
        log["seconds"] = time.perf_counter() - t0
        for k in ("loss", "grad_norm"):
            if not math.isfinite(log[k]):
                raise FloatingPointError(f"{k}: became {log[k]} at step {step + 1}; lower lr or check the data")
        return log

    # ---- checkpoints ---------------------------------------------------------------------------

    def _state(self) -> Dict[str, Any]:
        return {
            "format": TRAIN_STATE_FORMAT,
            "step": self.step,
            "total_steps": self.total_steps,
            "lam": self.lam,
            "rng": self._rng.bit_generator.state,
            "perm_epoch": self._perm_epoch,
            "perm": None if self._perm is None else self._perm.tolist(),
            "config": self.config.to_dict(),
            "data_sha256": self.data.digest(),
            "format_tokens": self.format.to_dict(),
        }

    def save_checkpoint(self) -> str:
        """Write a checkpoint of the current step to ``out_dir/checkpoints``
        and return its folder. The model, optimizer and trainer state go to a
        temporary folder that is renamed into place; only then is the
        ``LATEST`` pointer replaced (atomically), so a crash at any moment
        leaves the previous checkpoint the valid one."""
        if self.out_dir is None:
            raise ValueError("out_dir: needed to write checkpoints")
        ck = os.path.join(self.out_dir, "checkpoints")
        os.makedirs(ck, exist_ok=True)
        name = f"step-{self.step:06d}"
        final = os.path.join(ck, name)
        tmp = final + ".tmp"
        for d in os.listdir(ck):
            if d.endswith(".tmp"):  # left by an interrupted write: a folder, or the LATEST pointer's temp file
                p = os.path.join(ck, d)
                if os.path.isdir(p) and not os.path.islink(p):
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    try:
                        os.unlink(p)
                    except OSError:
                        pass
        if os.path.exists(final):
            shutil.rmtree(final)  # renamed into place, but LATEST was not yet updated to name it
        os.makedirs(tmp)
        self.model.save(tmp, optimizer=True)
        np.save(os.path.join(tmp, "dual_log_ratio.npy"), self._log_ratio)
        with open(os.path.join(tmp, "trainer_state.json"), "w", encoding="utf-8") as f:
            json.dump(self._state(), f, indent=1)
        _fsync_tree(tmp)
        os.rename(tmp, final)
        _io._fsync_dir(ck)
        _io.write_json(os.path.join(ck, "LATEST"), {"dir": name, "step": self.step})
        # drop older checkpoints beyond keep_checkpoints
        olds = sorted(d for d in os.listdir(ck) if d.startswith("step-") and not d.endswith(".tmp") and d != name)
        for d in olds[: max(0, len(olds) - (self.config.keep_checkpoints - 1))]:
            shutil.rmtree(os.path.join(ck, d), ignore_errors=True)
        return final

    def _resume(self) -> bool:
        from .models import TinyLM

        path = latest_checkpoint(self.out_dir) if self.out_dir is not None else None
        if path is None:
            return False
        with open(os.path.join(path, "trainer_state.json"), encoding="utf-8") as f:
            st = json.load(f)
        if st.get("format") != TRAIN_STATE_FORMAT:
            raise ValueError(f"{path}: not a checkpoint of this trainer (format {st.get('format')!r})")
        if st["data_sha256"] != self.data.digest():
            raise ValueError(f"{path}: was trained on other data (token ids differ); use another out_dir")
        mine = self.config.to_dict()
        theirs = st["config"]
        diff = sorted(k for k in mine if k not in ("checkpoint_every", "keep_checkpoints") and mine[k] != theirs.get(k))
        if diff:
            raise ValueError(f"{path}: was written with other settings ({', '.join(f'{k}={theirs.get(k)!r}' for k in diff)}); "
                             "use the same settings to resume or another out_dir")
        loaded = TinyLM.load(path, optimizer=True)
        if loaded.config != self.model.config:
            raise ValueError(f"{path}: model architecture differs from the model given")
        self.model.load_state_dict(loaded.state_dict())
        # optimizer state: the moments and step count of the checkpoint
        self.model._exp_avg[...] = loaded._exp_avg
        self.model._exp_avg_sq[...] = loaded._exp_avg_sq
        self.model.step_count = loaded.step_count
        self.step = int(st["step"])
        self.resumed_step = self.step
        self.lam = st["lam"]
        self._rng.bit_generator.state = st["rng"]
        self._perm_epoch = int(st["perm_epoch"])
        self._perm = None if st["perm"] is None else np.asarray(st["perm"], dtype=np.int64)
        self._log_ratio = np.load(os.path.join(path, "dual_log_ratio.npy"))
        if self.config.lam is not None:
            self._weights = self.weights_for(self.lam)
        log_path = os.path.join(self.out_dir, "train_log.jsonl")
        if os.path.exists(log_path):
            recs = _io.read_jsonl(log_path, torn_tail="drop")
            keep = [r for r in recs if r.get("step", 0) <= self.step]
            if len(keep) != len(recs) or recs.torn_tail:
                _io.write_jsonl(log_path, keep)
            self.history = keep
        return True

    # ---- the loop -------------------------------------------------------------------------------

    def train(self, *, resume: bool = True, max_steps: Optional[int] = None,
              callback: Optional[Callable[[Dict[str, Any]], Any]] = None) -> List[Dict[str, Any]]:
        """Run (or continue) training.

        Parameters
        ----------
        resume : bool, default True
            With an `out_dir` holding a checkpoint, continue from it: the
            model, optimizer moments, step, lambda, data order and RNG state
            are restored, so the run continues exactly as an uninterrupted
            one with the same seed would (and the log is cut back to the
            checkpoint's step).
        max_steps : int, optional
            Stop after this many steps in all (the schedule still spans the
            full run); a checkpoint is written at the stop.
        callback : callable, optional
            Called with each step's log.

        Returns
        -------
        list of dict
            :attr:`history`.
        """
        if not resume and self.out_dir is not None and latest_checkpoint(self.out_dir) is not None and self.step == 0:
            raise ValueError(f"out_dir: {self.out_dir} holds a checkpoint; pass resume=True or use another out_dir")
        # the reference is the model as given (before a checkpoint is loaded into it)
        self._load_or_compute_reference()
        if resume and self.step == 0:
            self._resume()
        end = self.total_steps if max_steps is None else min(self.total_steps, int(max_steps))
        appender = None
        if self.out_dir is not None:
            os.makedirs(self.out_dir, exist_ok=True)
            if self.step == 0:
                log_path = os.path.join(self.out_dir, "train_log.jsonl")
                if os.path.exists(log_path):
                    os.remove(log_path)
                _io.write_json(os.path.join(self.out_dir, "train_config.json"),
                               {"config": self.config.to_dict(), "format": self.format.to_dict(),
                                "n_samples": len(self.data), "total_steps": self.total_steps}, indent=1)
            appender = _io.JSONLAppender(os.path.join(self.out_dir, "train_log.jsonl"))
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.total_steps, initial=self.step, desc=f"train ({self.config.objective})", unit="step")
        every = self.config.checkpoint_every
        try:
            while self.step < end:
                log = self._train_step(self.step)
                self.step += 1
                self.history.append(log)
                if appender is not None:
                    appender.write_batch([log])
                if callback is not None:
                    callback(log)
                if bar is not None:
                    post = {"loss": f"{log['loss']:.4f}", "clip": f"{log['clip_fraction']:.2f}"}
                    if log["lam"] is not None:
                        post["lam"] = f"{log['lam']:.2f}"
                    bar.set_postfix(post, refresh=False)
                    bar.update(1)
                if self.out_dir is not None and (self.step == end or (every is not None and self.step % every == 0)):
                    self.save_checkpoint()
        finally:
            if bar is not None:
                bar.close()
            if appender is not None:
                appender.close()
        if self.out_dir is not None and self.step == self.total_steps:
            self.model.save(os.path.join(self.out_dir, "model"), optimizer=False)
        return self.history

    def summary(self) -> Dict[str, Any]:
        """First and last step's numbers and the totals."""
        h = self.history
        if not h:
            return {"steps": 0}
        return {"steps": len(h), "loss_first": h[0]["loss"], "loss_last": h[-1]["loss"],
                "clip_fraction_last": h[-1]["clip_fraction"], "approx_kl_last": h[-1]["approx_kl"],
                "lam_last": self.lam, "seconds": float(sum(x["seconds"] for x in h))}
