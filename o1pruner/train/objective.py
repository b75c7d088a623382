"""The objective spec: one :class:`PPOConfig` (clip bounds, ratio mode,
aggregate, dual clip, log-ratio clamp) shared by the built-in model's trainer
(:class:`o1pruner.TrainConfig` holds its fields), the Hugging Face trainer
(:class:`o1pruner.hf.O1PrunerTrainer`) and the command line.

The spec evaluates on any of the three twins of the kernel (C:
:func:`o1pruner.ppo_clip_loss`, NumPy: ``o1pruner.kernels.slow``, torch:
``o1pruner.kernels.torch``), which share one signature. A batch split into
micro-batches passes the whole batch's normalisers (``global_batch_size``,
``batch_num_tokens``, ``max_response_length``) with each micro-batch, as
verl's ``agg_loss`` does, so the summed micro-batch losses and gradients are
those of the whole batch whatever the split.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Dict, Optional

import numpy as np

from ..data.validators import bounded_number
from ..kernels.objectives import PPOClipResult, ppo_clip_loss

__all__ = ["PPOConfig", "RATIOS", "SEQUENCE_AGGREGATES", "TOKEN_AGGREGATES"]

RATIOS = ("sequence_mean", "token")
SEQUENCE_AGGREGATES = ("mean", "sum")
TOKEN_AGGREGATES = ("token-mean", "bnpo", "grpo", "seq-mean-token-mean", "seq-mean-token-sum", "dr_grpo")


@dataclass
class PPOConfig:
    """O1-Pruner's PPO-clip objective (method.md step 3); the defaults are
    the public O1-Pruner code's loss.

    Parameters
    ----------
    eps_low, eps_high : float, default 0.2
        PPO clip range ``[1 - eps_low, 1 + eps_high]``, each in (0, 1).
    ratio : {"sequence_mean", "token"}, default "sequence_mean"
        The importance ratio: the public code's length-normalised sequence
        ratio, or per token (TRL / verl).
    aggregate : str or None
        The loss aggregation (see :func:`o1pruner.ppo_clip_loss`); None: its
        default for the ratio mode ("mean", "token-mean").
    dual_clip, logratio_clamp : float or None
        As in :func:`o1pruner.ppo_clip_loss` (> 1, > 0).
    """

    eps_low: float = 0.2
    eps_high: float = 0.2
    ratio: str = "sequence_mean"
    aggregate: Optional[str] = None
    dual_clip: Optional[float] = None
    logratio_clamp: Optional[float] = None

    def __post_init__(self) -> None:
        def number(name, lo=None, hi=None, lo_open=False, hi_open=False, allow_none=False):
            object.__setattr__(self, name, bounded_number(getattr(self, name), name, lo, hi, lo_open, hi_open, allow_none))

        number("eps_low", 0, 1, lo_open=True, hi_open=True)
        number("eps_high", 0, 1, lo_open=True, hi_open=True)
        number("dual_clip", 1, lo_open=True, allow_none=True)
        number("logratio_clamp", 0, lo_open=True, allow_none=True)
        if self.ratio not in RATIOS:
            raise ValueError(f"ratio: must be one of {RATIOS}, got {self.ratio!r}")
        allowed = SEQUENCE_AGGREGATES if self.ratio == "sequence_mean" else TOKEN_AGGREGATES
        if self.aggregate is not None and self.aggregate not in allowed:
            raise ValueError(f"aggregate: with ratio={self.ratio!r} must be one of {allowed} or None, got {self.aggregate!r}")

    @property
    def resolved_aggregate(self) -> str:
        """The aggregate, with None resolved to the ratio mode's default."""
        return self.aggregate or ("mean" if self.ratio == "sequence_mean" else "token-mean")

    def to_dict(self) -> Dict[str, Any]:
        """The objective's fields (also of a :class:`~o1pruner.TrainConfig`)."""
        return {f.name: getattr(self, f.name) for f in fields(PPOConfig)}

    def kwargs(self) -> Dict[str, Any]:
        """The keyword arguments of the kernels (every twin takes them)."""
        return dict(eps_low=self.eps_low, eps_high=self.eps_high, ratio=self.ratio, aggregate=self.resolved_aggregate,
                    dual_clip=self.dual_clip, logratio_clamp=self.logratio_clamp)

    def loss(self, logp: Any, ref_logp: Any, advantages: Any, mask: Any, *, global_batch_size: Optional[int] = None,
             batch_num_tokens: Optional[int] = None, max_response_length: Optional[int] = None) -> PPOClipResult:
        """The objective on the C kernel (:func:`o1pruner.ppo_clip_loss`) for
        one (micro-)batch, normalised by the whole batch's counts when given."""
        return ppo_clip_loss(logp, ref_logp, advantages, mask, **self.kwargs(), global_batch_size=global_batch_size,
                             batch_num_tokens=batch_num_tokens, max_response_length=max_response_length)

    def ratio_stats(self, logp: Any, ref_mean_logp: Any, mask: Any):
        """Diagnostics (:class:`o1pruner.PPOStats`) of the length-normalised
        sequence ratio of a batch, for a loss that is not this objective (the
        SFT baseline logs them too): the kernel's statistics at advantage 1."""
        return ppo_clip_loss(logp, ref_mean_logp, np.ones(np.shape(ref_mean_logp)[0]), mask, self.eps_low, self.eps_high,
                             "sequence_mean", "sum").stats
