"""The weighted training set as columns: one record per kept sample (for
files) and the same values as arrays (for the trainers and kernels)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from . import io as _io
from .formats import write_llamafactory
from .io import PathLike
from .records import problem_key

__all__ = ["WeightedDataset"]


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
