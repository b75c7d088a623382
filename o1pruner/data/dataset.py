"""The weighted training set as columns: one record per kept sample (for
files) and the same values as arrays (for the trainers and kernels); and the
preference pairs of the DPO baseline (one record per pair)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from . import io as _io
from .formats import write_llamafactory
from .io import PathLike
from .records import FileLoc, problem_key, record_loc

__all__ = ["WeightedDataset", "PairDataset", "pair_sequences", "RESPONSE_FIELDS"]


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
        cols["group"] = np.array([row[problem_key(r["problem_id"])] for r in self.records], dtype=np.int64)
        return cols

    def to_jsonl(self, path: PathLike) -> None:
        """Write the records as JSONL (atomically)."""
        _io.write_jsonl(path, self.records)

    def to_llamafactory(self, path: PathLike, template: Any = None) -> None:
        """Write the LLaMA-Factory weighted training set (messages +
        weight); see :func:`o1pruner.io.write_llamafactory`."""
        write_llamafactory(path, self.records, template=template)

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


#: the fields of a sample record that belong to its response (they go under
#: "chosen" / "rejected" in a pair record even when both sides agree)
RESPONSE_FIELDS = ("solution", "token_ids", "answer", "length", "correct", "sample_index", "finish_reason")


def pair_sequences(records: Sequence[Mapping[str, Any]], where: Any = "pairs") -> List[Dict[str, Any]]:
    """The sequences of pair records as sample records: the chosen response
    of every pair, then the rejected one of every pair (``2 P`` records,
    sequence ``i`` and ``P + i`` from pair ``i``), each with the pair's
    shared fields. Raises ValueError naming the record when a record has no
    ``chosen`` / ``rejected`` object."""
    chosen, rejected = [], []
    for i, r in enumerate(records):
        if not isinstance(r, Mapping):
            raise TypeError(f"{record_loc(where, i)}: expected a pair record (a dict), got {type(r).__name__}")
        sides = []
        for side in ("chosen", "rejected"):
            v = r.get(side)
            if not isinstance(v, Mapping):
                raise ValueError(f"{record_loc(where, i)}: a pair record needs a '{side}' object (the response "
                                 f"fields of its {side} sample), got {type(v).__name__}")
            sides.append(v)
        shared = {k: v for k, v in r.items() if k not in ("chosen", "rejected")}
        chosen.append({**shared, **sides[0]})
        rejected.append({**shared, **sides[1]})
    return chosen + rejected


@dataclass
class PairDataset:
    """Preference pairs of the paper's DPO baseline (:func:`o1pruner.dpo_pairs`).

    Attributes
    ----------
    records : list of dict
        One per pair: the fields its two samples share (``problem_id``,
        ``problem``, ``ground_truth_answer``, ``prompt``, ...) plus the
        problem's ``ref_mean_length``, ``ref_accuracy`` and ``n_samples``, and
        ``chosen`` / ``rejected``: the fields of each response (``solution``
        or ``token_ids``, ``length``, ``correct``, ``sample_index``, and any
        other field the two samples do not share).
    problems : list of dict
        One per problem of the samples (used or skipped): ``problem_id``,
        ``ref_mean_length``, ``ref_accuracy``, ``n_samples``, ``pairs``
        (how many pairs it gave) and ``skipped`` (None, "no_correct" or
        "no_longer").
    params : dict
        The construction's options.
    """

    records: List[Dict[str, Any]]
    problems: List[Dict[str, Any]] = field(default_factory=list)
    params: Dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self):
        return iter(self.records)

    def __getitem__(self, i):
        return self.records[i]

    def sequences(self) -> List[Dict[str, Any]]:
        """The chosen responses, then the rejected ones, as sample records
        (see :func:`pair_sequences`)."""
        return pair_sequences(self.records, "pairs")

    def counts(self) -> Dict[str, int]:
        """``problems``, ``pairs``, ``problems_used`` and the problems skipped:
        ``no_correct`` (no correct sample) and ``no_longer`` (no sample
        longer than its shortest correct one)."""
        skipped = [p.get("skipped") for p in self.problems]
        return {"problems": len(self.problems), "pairs": len(self.records),
                "problems_used": sum(1 for p in self.problems if p.get("pairs", 0) > 0),
                "no_correct": skipped.count("no_correct"), "no_longer": skipped.count("no_longer")}

    def to_jsonl(self, path: PathLike) -> None:
        """Write the pair records as JSONL (atomically), one pair a line."""
        _io.write_jsonl(path, self.records)

    @classmethod
    def from_jsonl(cls, path: PathLike) -> "PairDataset":
        """Read pair records written by :meth:`to_jsonl` (each line is
        checked to be a pair; problems and params are not stored there)."""
        read = _io.read_jsonl(path)
        recs = [dict(r) for r in read]
        where = FileLoc(str(path))
        where.lines = list(read.lines)
        pair_sequences(recs, where)  # validates every record
        return cls(recs)

    def summary(self) -> str:
        c = self.counts()
        lc = [r["chosen"].get("length") for r in self.records]
        lr = [r["rejected"].get("length") for r in self.records]
        lengths = ""
        if self.records and all(isinstance(x, (int, float)) for x in lc + lr):
            lengths = f"; mean length chosen {np.mean(lc):.1f}, rejected {np.mean(lr):.1f}"
        text = f"{c['pairs']} pairs"
        if self.problems:
            text += (f" from {c['problems_used']} of {c['problems']} problems; skipped {c['no_correct']} with no "
                     f"correct sample and {c['no_longer']} with no sample longer than the shortest correct one")
        return text + lengths

    def __repr__(self) -> str:
        return f"PairDataset({self.summary()})"
