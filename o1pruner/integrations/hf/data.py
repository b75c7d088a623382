"""Training records as a torch dataset (token ids, response masks, weights,
reference log-probs in float64) and the collator that pads them."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ...data.prompts import as_template
from ...data.validators import finite_number
from .logprobs import pad_batch
from .tokenize import encode_pair, truncate, warn_truncated

from .deps import torch, transformers  # noqa: F401  (the [hf] extra, or an ImportError naming it)

__all__ = ["O1PrunerDataset", "O1PrunerCollator", "RECORD_FIELDS"]


#: Record fields the trainer reads (ref_num_tokens is optional: when present it
#: is checked against the trainer's own tokenisation).
RECORD_FIELDS = ("prompt", "response", "weight", "ref_mean_logp")


def records_list(records) -> List[Mapping[str, Any]]:
    if hasattr(records, "records") and isinstance(getattr(records, "records"), list):
        return records.records  # o1pruner.WeightedDataset
    if isinstance(records, Mapping):
        raise TypeError("records: expected a sequence of dict records, got one dict "
                        "(a column dict? pass datasets.Dataset.from_dict(...) or a list of rows)")
    return records if isinstance(records, (list, tuple)) else list(records)


class O1PrunerDataset(torch.utils.data.Dataset):
    """Tokenised O1-Pruner training records.

    Each record needs the problem text (``problem``, or ``prompt``), the
    response (``response``, or ``solution``), ``weight`` (from
    :func:`o1pruner.build_dataset` / :func:`o1pruner.harmonize_weights`) and
    ``ref_mean_logp`` (the frozen reference's mean token log-prob of the
    response, from :func:`response_logprobs` or
    :meth:`O1PrunerTrainer.compute_reference`). The records of
    :func:`o1pruner.build_dataset` work as they are.

    Consistency checks: a record with both ``problem`` and ``prompt`` (as
    :func:`o1pruner.presample` writes: the rendered text the sample was
    drawn with) must render to that same prompt under `template`, so a
    training template that differs from the sampling one is an error, not a
    silent bias; an optional ``ref_num_tokens`` must match this
    tokenisation, so a reference scored with another template, eos setting
    or cutoff is caught.

    Parameters
    ----------
    records : sequence of mappings (list of dicts, WeightedDataset, datasets.Dataset, ...)
    tokenizer : transformers tokenizer
    template, append_eos : see :func:`encode_pair`
    max_length : int, optional
        Cutoff in tokens (the paper: 3072 or 4096); longer responses are
        truncated (warned, counted in ``num_truncated``).
    require_reference : bool, default False
        Raise at once when a record lacks ``ref_mean_logp``. When False the
        value may be filled in later (:meth:`set_reference`); training checks.

    Raises
    ------
    ValueError, TypeError
        Missing or invalid fields, named with the record index.
    """

    def __init__(self, records, tokenizer, *, template: Any = None,
                 append_eos: bool = True, max_length: Optional[int] = None,
                 require_reference: bool = False):
        recs = records_list(records)
        tpl = as_template(template)
        n = len(recs)
        if n == 0:
            raise ValueError("records: empty, nothing to train on")
        if max_length is not None and int(max_length) < 2:
            raise ValueError(f"max_length: must be >= 2, got {max_length}")
        self.max_length = None if max_length is None else int(max_length)
        self.input_ids: List[np.ndarray] = []
        self.starts = np.zeros(n, dtype=np.int64)
        self.weight = np.zeros(n, dtype=np.float64)
        self.ref_mean_logp = np.full(n, np.nan, dtype=np.float64)
        self.truncated = np.zeros(n, dtype=bool)
        for i, r in enumerate(recs):
            if not isinstance(r, Mapping):
                raise TypeError(f"records[{i}]: expected a dict, got {type(r).__name__}")
            problem = record_field(r, ("problem", "prompt"), i)
            response = record_field(r, ("response", "solution"), i)
            if r.get("weight") is None:
                raise ValueError(f"records[{i}]: missing field 'weight' (the O1-Pruner weight: see "
                                 "o1pruner.build_dataset or o1pruner.harmonize_weights)")
            if r.get("problem") is not None and r.get("prompt") is not None:
                rendered = tpl.render(r["problem"], tokenizer)
                if rendered != r["prompt"]:
                    raise ValueError(
                        f"records[{i}]['prompt']: the stored prompt (the text the sample was drawn with) differs "
                        f"from the template's rendering of 'problem' ({rendered[:60]!r}...); pass the template "
                        f"used for sampling")
            self.weight[i] = finite_number(r["weight"], f"records[{i}]['weight']")
            ref = r.get("ref_mean_logp")
            if ref is None:
                if require_reference:
                    raise ValueError(f"records[{i}]: missing field 'ref_mean_logp' (precompute it with "
                                     "o1pruner.hf.response_logprobs or O1PrunerTrainer.compute_reference)")
            else:
                v = finite_number(ref, f"records[{i}]['ref_mean_logp']")
                if v > 0:
                    raise ValueError(f"records[{i}]['ref_mean_logp']: a mean log-prob is <= 0, got {v}")
                self.ref_mean_logp[i] = v
            ids, p = encode_pair(tokenizer, problem, response, tpl, append_eos)
            if len(ids) == p:
                raise ValueError(f"records[{i}]['response']: empty response, no token to train on")
            ids, self.truncated[i] = truncate(ids, p, self.max_length, f"records[{i}]['problem']")
            nref = r.get("ref_num_tokens")
            if nref is not None and int(nref) != len(ids) - p:
                raise ValueError(
                    f"records[{i}]['ref_num_tokens']: the reference scored {int(nref)} tokens but this "
                    f"tokenisation gives {len(ids) - p}; score the reference with the same template, "
                    f"append_eos and max_length as training")
            self.input_ids.append(np.asarray(ids, dtype=np.int64))
            self.starts[i] = p
        warn_truncated(self.truncated, self.max_length)

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, i: int) -> Dict[str, Any]:
        return {"input_ids": self.input_ids[i], "response_start": int(self.starts[i]),
                "weight": float(self.weight[i]), "ref_mean_logp": float(self.ref_mean_logp[i]), "index": i}

    @property
    def num_truncated(self) -> int:
        return int(self.truncated.sum())

    @property
    def num_tokens(self) -> np.ndarray:
        """Scored (response) tokens per record."""
        return np.array([len(x) for x in self.input_ids], dtype=np.int64) - self.starts

    def missing_reference(self) -> np.ndarray:
        """Indices of records without ``ref_mean_logp``."""
        return np.flatnonzero(np.isnan(self.ref_mean_logp))

    def set_reference(self, ref_mean_logp) -> None:
        """Set every record's ``ref_mean_logp`` (array of shape (len(self),))."""
        v = np.asarray(ref_mean_logp, dtype=np.float64)
        if v.shape != (len(self),):
            raise ValueError(f"ref_mean_logp: expected shape ({len(self)},), got {v.shape}")
        if not np.all(np.isfinite(v)):
            raise ValueError(f"ref_mean_logp: {int((~np.isfinite(v)).sum())} values are not finite")
        self.ref_mean_logp[:] = v

    def records(self, records=None) -> List[Dict[str, Any]]:
        """The reference statistics as records (``ref_mean_logp``,
        ``ref_num_tokens``), merged into `records` when given: save them and
        the next run skips the reference pass."""
        out = []
        for i in range(len(self)):
            base = dict(records[i]) if records is not None else {}
            base["ref_mean_logp"] = float(self.ref_mean_logp[i])
            base["ref_num_tokens"] = int(self.num_tokens[i])
            out.append(base)
        return out


def record_field(r: Mapping[str, Any], names: Tuple[str, str], i: int) -> str:
    for f in names:
        v = r.get(f)
        if v is not None:
            if not isinstance(v, str):
                raise TypeError(f"records[{i}]['{f}']: expected str, got {type(v).__name__}")
            return v
    raise ValueError(f"records[{i}]: missing field {names[0]!r} (or {names[1]!r})")


class O1PrunerCollator:
    """Right-pad a list of :class:`O1PrunerDataset` items into tensors:
    input_ids, attention_mask, response_mask, weight, ref_mean_logp, index."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: Optional[int] = None):
        self.pad_token_id = int(pad_token_id)
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
        seqs = [f["input_ids"] for f in features]
        starts = [int(f["response_start"]) for f in features]
        T = max(len(s) for s in seqs)
        if self.pad_to_multiple_of:
            m = int(self.pad_to_multiple_of)
            T = -(-T // m) * m
        ids, att, resp = pad_batch(seqs, starts, self.pad_token_id, length=T)
        return {
            "input_ids": ids,
            "attention_mask": att,
            "response_mask": resp,
            "weight": torch.tensor([float(f["weight"]) for f in features], dtype=torch.float64),
            "ref_mean_logp": torch.tensor([float(f["ref_mean_logp"]) for f in features], dtype=torch.float64),
            "index": torch.tensor([int(f.get("index", -1)) for f in features], dtype=torch.long),
        }
