"""A transformers.Trainer that trains with the O1-Pruner loss (method.md
step 3) on the engine researchers already use (accelerate, DeepSpeed ZeRO-3,
FSDP), with the frozen reference's log-probs computed once before training,
and the paper's training arguments."""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional

import numpy as np

from ...kernels.torch import ppo_clip_loss
from ...train.objective import PPOConfig
from .data import O1PrunerCollator, O1PrunerDataset
from .logprobs import response_logprob_sums
from .tokenize import context_length, pad_token_id

from .deps import torch, transformers  # noqa: F401  (the [hf] extra, or an ImportError naming it)

__all__ = ["o1pruner_loss", "O1PrunerTrainer", "paper_training_arguments"]


# ---- the public O1-Pruner loss in torch ------------------------------------------

def o1pruner_loss(mean_logp, ref_mean_logp, weight, clip_eps: float = 0.2, objective: Optional[PPOConfig] = None):
    """The O1-Pruner loss (method.md step 3) of per-sequence mean log-probs,
    differentiable: the torch twin of :func:`o1pruner.ppo_clip_loss`
    (``o1pruner.kernels.torch.ppo_clip_loss``) with
    ``ratio="sequence_mean"``, each sequence's mean given as its only token.

    With the defaults, ``r = exp(mean_logp - ref_mean_logp)`` and
    ``loss = mean_b max(-w_b r_b, -w_b clamp(r_b, 1 - eps, 1 + eps))``.

    Parameters
    ----------
    mean_logp : Tensor, shape (B,)
        Policy's mean response-token log-prob per sequence.
    ref_mean_logp, weight : Tensor, shape (B,)
        Frozen reference's mean log-prob (float64 is kept) and the O1-Pruner weight.
    clip_eps : float, default 0.2
        Symmetric clip range, when `objective` is not given.
    objective : PPOConfig, optional
        The objective spec (clip bounds, dual clip, clamp, aggregate "mean" or
        "sum"); its ratio must be "sequence_mean".

    Returns
    -------
    (loss, stats) : scalar Tensor and a dict of floats
        ``stats``: ``ratio_mean``, ``clip_fraction`` (share of sequences whose
        clipped branch is active: the gradient stops there).
    """
    spec = objective if objective is not None else PPOConfig(eps_low=clip_eps, eps_high=clip_eps)
    if spec.ratio != "sequence_mean":
        raise ValueError(f"objective: the Hugging Face trainer scores sequences by their mean log-prob, so ratio must "
                         f"be 'sequence_mean', got {spec.ratio!r}")
    mask = torch.ones((mean_logp.shape[0], 1), dtype=torch.bool, device=mean_logp.device)
    loss, st = ppo_clip_loss(mean_logp[:, None], ref_mean_logp.detach(), weight.detach(), mask, **spec.kwargs(),
                             return_stats=True)
    return loss, {"ratio_mean": st.ratio_mean, "clip_fraction": st.clip_fraction}


# ---- dataset, collator, trainer ----------------------------------------------


_OWN_KEYS = ("response_mask", "weight", "ref_mean_logp", "index")


class O1PrunerTrainer(transformers.Trainer):
    """A ``transformers.Trainer`` that trains with the public O1-Pruner loss.

    Off-policy PPO-clip on pre-sampled responses (method.md step 3): per
    sequence the mean response-token log-prob of the policy and of the frozen
    reference give ``r = exp(mean_logp - ref_mean_logp)``, and the loss is
    ``mean_b max(-w_b r_b, -w_b clamp(r_b, 1-eps, 1+eps))`` (no KL, no
    entropy, ratio always against the initial model). Everything else (the
    optimiser, schedule, gradient accumulation, mixed precision,
    accelerate/DeepSpeed/FSDP) is the stock Trainer's.

    Unlike the public code, the reference log-probs are computed once before
    training (:meth:`compute_reference`, or :func:`response_logprobs` offline)
    and stored in the records, so no second copy of the model is kept.

    Parameters
    ----------
    model, args, processing_class, callbacks, optimizers, ... :
        As ``transformers.Trainer``. ``processing_class`` (the tokenizer) is
        required unless the datasets are already :class:`O1PrunerDataset`.
        ``args.remove_unused_columns`` is set to False (the loss needs the
        record columns).
    train_dataset, eval_dataset : records or O1PrunerDataset
        Records (list of dicts, datasets.Dataset) with ``prompt``,
        ``response``, ``weight`` and ``ref_mean_logp`` (may be missing until
        :meth:`compute_reference` is called).
    template, append_eos : see :func:`encode_pair`
        Use the template the samples were generated with.
    max_length : int, optional
        Token cutoff (paper: 3072 for Marco-o1, 4096 for QwQ); default the
        model's context length.
    objective : PPOConfig, optional
        The objective (:class:`o1pruner.train.PPOConfig`, shared with the
        built-in trainer and the CLI; ratio "sequence_mean"). Default: the
        public loss, symmetric clip `clip_eps`.
    clip_eps : float, default 0.2
        Shorthand for ``PPOConfig(eps_low=clip_eps, eps_high=clip_eps)``.
    temperature : float, default 1.0
        Logits are divided by it (as for the reference).

    Notes
    -----
    Each micro-batch's loss is its mean over sequences, divided by the number
    of gradient-accumulation steps, and data-parallel ranks average their
    gradients: with equal micro-batches the step uses the mean over the whole
    effective batch, as the public code does. Logged per step: ``ratio_mean``
    and ``clip_fraction``.
    """

    def __init__(self, model=None, args=None, data_collator=None, train_dataset=None, eval_dataset=None,
                 processing_class=None, *, template: Any = None,
                 append_eos: bool = True, max_length: Optional[int] = None, clip_eps: float = 0.2,
                 temperature: float = 1.0, objective: Optional[PPOConfig] = None, **kwargs):
        if not (0.0 < float(clip_eps) < 1.0):
            raise ValueError(f"clip_eps: must be in (0, 1), got {clip_eps}")
        if objective is None:
            objective = PPOConfig(eps_low=float(clip_eps), eps_high=float(clip_eps))
        elif not isinstance(objective, PPOConfig):
            raise TypeError(f"objective: expected a PPOConfig, got {type(objective).__name__}")
        if objective.ratio != "sequence_mean":
            raise ValueError(f"objective: ratio must be 'sequence_mean' (the trainer keeps one reference mean "
                             f"log-prob per record), got {objective.ratio!r}")
        if not (temperature > 0 and math.isfinite(temperature)):
            raise ValueError(f"temperature: must be positive and finite, got {temperature}")
        if model is None:
            raise ValueError("model: required")
        self.objective = objective
        self.clip_eps = float(clip_eps)
        self.temperature = float(temperature)
        self._o1p_encode = dict(template=template, append_eos=append_eos,
                                max_length=context_length(model, max_length))
        self._o1p_tokenizer = processing_class
        train_dataset = self._as_dataset(train_dataset, "train_dataset")
        if isinstance(eval_dataset, dict):
            eval_dataset = {k: self._as_dataset(v, f"eval_dataset[{k!r}]") for k, v in eval_dataset.items()}
        else:
            eval_dataset = self._as_dataset(eval_dataset, "eval_dataset")
        if args is None:
            args = transformers.TrainingArguments(output_dir="o1pruner_runs/hf", report_to="none")
        args.remove_unused_columns = False
        if data_collator is None:
            if processing_class is None:
                raise ValueError("processing_class: a tokenizer is needed (for the pad id)")
            data_collator = O1PrunerCollator(pad_token_id(processing_class))
        super().__init__(model=model, args=args, data_collator=data_collator, train_dataset=train_dataset,
                         eval_dataset=eval_dataset, processing_class=processing_class, **kwargs)
        # our loss is a per-micro-batch mean: let the Trainer divide it by the
        # accumulation steps (the model's own token-count scaling does not apply)
        self.model_accepts_loss_kwargs = False
        if hasattr(self, "loss_is_scaled_for_ga"):
            self.loss_is_scaled_for_ga = False
        self.label_names = []
        self._o1p_stats: Dict[str, List[float]] = {}
        self._o1p_reference_mode = False

    def _prepare_inputs(self, inputs):
        # weights and reference means travel as float64 (as the C API keeps
        # them); Apple's MPS has no float64
        if self.args.device.type == "mps":
            inputs = {k: v.float() if isinstance(v, torch.Tensor) and v.dtype == torch.float64 else v
                      for k, v in inputs.items()}
        return super()._prepare_inputs(inputs)

    def _as_dataset(self, data, name: str):
        if data is None or isinstance(data, O1PrunerDataset):
            return data
        if self._o1p_tokenizer is None:
            raise ValueError(f"processing_class: a tokenizer is needed to tokenise {name}")
        return O1PrunerDataset(data, self._o1p_tokenizer, **self._o1p_encode)

    # -- loss -------------------------------------------------------------------
    def _mean_logp(self, model, inputs):
        model_inputs = {k: v for k, v in inputs.items() if k not in _OWN_KEYS}
        logits = model(**model_inputs).logits
        sums, counts = response_logprob_sums(logits, inputs["input_ids"], inputs["response_mask"], self.temperature)
        return sums / counts.clamp(min=1).to(sums.dtype), counts

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        ref = inputs["ref_mean_logp"]
        if torch.isnan(ref).any():
            bad = inputs["index"][torch.isnan(ref)].tolist()
            raise ValueError(f"ref_mean_logp: missing for records {bad[:5]}; call trainer.compute_reference() "
                             "first or precompute it with o1pruner.hf.response_logprobs")
        mean_lp, _ = self._mean_logp(model, inputs)
        loss, stats = o1pruner_loss(mean_lp, ref, inputs["weight"], objective=self.objective)
        if model.training:
            for k, v in stats.items():
                self._o1p_stats.setdefault(k, []).append(v)
        return (loss, {"mean_logp": mean_lp.detach()}) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            if self._o1p_reference_mode:
                mean_lp, counts = self._mean_logp(model, inputs)
                preds = torch.stack([mean_lp.float(), counts.float()], dim=1)
                return None, preds, inputs["index"]
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    def log(self, logs: Dict[str, float], *args, **kwargs) -> None:
        if self._o1p_stats and "loss" in logs:
            for k, v in self._o1p_stats.items():
                logs[k] = float(np.mean(v))
            self._o1p_stats = {}
        super().log(logs, *args, **kwargs)

    # -- reference ----------------------------------------------------------------
    def compute_reference(self, dataset: Optional[O1PrunerDataset] = None) -> np.ndarray:
        """Score the records with the current (initial) model and store their
        ``ref_mean_logp``: the frozen reference, computed once.

        Call before :meth:`train`. Without `dataset` it scores the train
        dataset and every eval dataset. It runs the Trainer's own distributed
        prediction loop, so under accelerate/DeepSpeed ZeRO-3 it uses the same
        sharded model as training (no second copy). Returns the values of
        `dataset` (default: of the train dataset); they are also written into
        the datasets, and ``dataset.records(...)`` gives them as records to
        save so that the next run skips this pass.
        """
        if self.state.global_step > 0:
            raise RuntimeError("compute_reference: the model has already been trained; the reference must be "
                               "the initial model")
        if dataset is not None:
            if not isinstance(dataset, O1PrunerDataset):
                raise TypeError(f"dataset: expected an O1PrunerDataset, got {type(dataset).__name__}")
            return self._score_reference(dataset)
        evals = self.eval_dataset.values() if isinstance(self.eval_dataset, dict) else [self.eval_dataset]
        for ds in evals:
            if isinstance(ds, O1PrunerDataset):
                self._score_reference(ds)
        if not isinstance(self.train_dataset, O1PrunerDataset):
            raise TypeError("train_dataset: expected records or an O1PrunerDataset")
        return self._score_reference(self.train_dataset)

    def _score_reference(self, ds: O1PrunerDataset) -> np.ndarray:
        self._o1p_reference_mode = True
        try:
            out = self.predict(ds, metric_key_prefix="reference")
        finally:
            self._o1p_reference_mode = False
        preds, idx = np.asarray(out.predictions), np.asarray(out.label_ids).astype(np.int64)
        values = np.full(len(ds), np.nan)
        values[idx] = preds[:, 0]
        counts = np.zeros(len(ds), dtype=np.int64)
        counts[idx] = preds[:, 1].astype(np.int64)
        if np.isnan(values).any() or not np.array_equal(counts, ds.num_tokens):
            raise RuntimeError("compute_reference: the prediction loop did not return every record once")
        ds.set_reference(values)
        return values

    def train(self, *args, **kwargs):
        for name, ds in (("train_dataset", self.train_dataset),):
            if isinstance(ds, O1PrunerDataset):
                miss = ds.missing_reference()
                if miss.size:
                    raise ValueError(
                        f"{name}: {miss.size} records have no 'ref_mean_logp' (first: {miss[:5].tolist()}); "
                        "call trainer.compute_reference() before train(), or precompute it with "
                        "o1pruner.hf.response_logprobs")
        return super().train(*args, **kwargs)


# ---- the paper's hyper-parameters ---------------------------------------------

def paper_training_arguments(output_dir: str, *, model: str = "marco-o1-7b", **overrides):
    """``TrainingArguments`` with the paper's / public code's setup.

    1 epoch, cosine schedule with 10% warmup, grad-norm clip 10, effective
    batch 32 (per-device batch x accumulation x devices: set
    ``per_device_train_batch_size`` and ``gradient_accumulation_steps`` for
    your GPU count), lr 2e-7 for Marco-o1-7B (full fine-tune) or 2e-6 for
    QwQ-32B-Preview. ``overrides`` win (e.g. ``bf16=True``,
    ``deepspeed="examples/hf/ds_zero3.json"``, ``gradient_checkpointing=True``).
    """
    lrs = {"marco-o1-7b": 2e-7, "qwq-32b": 2e-6}
    if model not in lrs:
        raise ValueError(f"model: expected one of {sorted(lrs)}, got {model!r}")
    kw: Dict[str, Any] = dict(output_dir=output_dir, num_train_epochs=1, learning_rate=lrs[model],
                              lr_scheduler_type="cosine", max_grad_norm=10.0, weight_decay=0.0,
                              per_device_train_batch_size=1, gradient_accumulation_steps=32,
                              logging_steps=1, save_strategy="epoch", report_to="none")
    import dataclasses

    fields = {f.name for f in dataclasses.fields(transformers.TrainingArguments)}
    # transformers >= 5 takes the warmup ratio as a float warmup_steps
    kw["warmup_ratio" if "warmup_ratio" in fields else "warmup_steps"] = 0.1
    kw.update(overrides)
    return transformers.TrainingArguments(**kw)
