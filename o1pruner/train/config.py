"""Settings of the built-in model's trainer and its learning-rate schedule."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import numpy as np

from ..data.validators import bounded_number
from .objective import PPOConfig

__all__ = ["TrainConfig", "lr_at"]


@dataclass
class TrainConfig(PPOConfig):
    """Settings of :class:`Trainer`. Defaults are the public O1-Pruner code's
    where it has one (method.md step 3), except the learning rate, which is
    for the small built-in model.

    Parameters
    ----------
    objective : {"ppo", "sft", "dpo"}, default "ppo"
        "ppo": O1-Pruner's off-policy PPO-clip loss with the records'
        weights as advantages (:func:`o1pruner.ppo_clip_loss`). "sft":
        supervised fine-tuning, the mean negative log-likelihood per response
        token of the batch (the paper's SFT baseline; weights are ignored).
        "dpo": the paper's DPO baseline on preference pairs
        (:func:`o1pruner.dpo_pairs`) with :func:`o1pruner.dpo_loss` against
        the frozen reference (the PPO fields are not used).
    dpo_beta : float, default 0.1
        DPO's beta (> 0), with ``objective="dpo"``.
    dpo_length_normalize : bool, default False
        DPO on mean instead of summed token log-probs (see
        :func:`o1pruner.dpo_loss`).
    epochs : int, default 1
    batch_size : int, default 32
        Sequences per optimizer step (the last batch of an epoch may be
        smaller); pairs with ``objective="dpo"`` (each pair is two sequences).
    micro_batch_size : int or None
        Sequences (DPO: pairs) per forward/backward; gradients are accumulated over the
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
    eps_low, eps_high, ratio, aggregate, dual_clip, logratio_clamp
        The objective: a TrainConfig is a :class:`o1pruner.train.PPOConfig`
        (the spec shared with the Hugging Face trainer and the CLI; documented
        there, defaults the public code's loss) with the training settings
        added; :attr:`ppo` gives the objective alone. With
        micro-batches the aggregate is taken with the whole batch's
        normalisers, so the step does not depend on the split.
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
    dpo_beta: float = 0.1
    dpo_length_normalize: bool = False
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
            setattr(self, name, bounded_number(getattr(self, name), name, lo, hi, lo_open, hi_open, allow_none))

        if self.objective not in ("ppo", "sft", "dpo"):
            raise ValueError(f"objective: must be 'ppo', 'sft' or 'dpo', got {self.objective!r}")
        number("dpo_beta", 0, lo_open=True)
        if not isinstance(self.dpo_length_normalize, (bool, np.bool_)):
            raise ValueError(f"dpo_length_normalize: must be a bool, got {self.dpo_length_normalize!r}")
        self.dpo_length_normalize = bool(self.dpo_length_normalize)
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
        PPOConfig.__post_init__(self)  # the objective's fields
        if not isinstance(self.betas, (tuple, list)) or len(self.betas) != 2 or not all(
                isinstance(b, (int, float)) and 0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas: must be a pair of numbers in [0, 1), got {self.betas!r}")
        self.betas = (float(self.betas[0]), float(self.betas[1]))
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

    @property
    def ppo(self) -> PPOConfig:
        """The objective's settings as the shared spec (eps_low, eps_high,
        ratio, aggregate, dual_clip, logratio_clamp)."""
        return PPOConfig(self.eps_low, self.eps_high, self.ratio, self.aggregate, self.dual_clip, self.logratio_clamp)

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
