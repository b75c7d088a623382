"""Off-policy fine-tuning of the built-in model (method.md step 3): O1-Pruner's
PPO-clip objective against a frozen reference, with a fixed lambda or the
dual ascent of method.md ("Going beyond"), and the SFT-shortest and DPO baselines,
with per-step logs, crash-safe checkpoints and exact resume.

Modules: :mod:`.objective` (:class:`PPOConfig`, the objective spec shared with
the Hugging Face trainer and the CLI), :mod:`.config` (:class:`TrainConfig`,
the schedule), :mod:`.ref_logprobs`, :mod:`.dual` (lambda and the weights),
:mod:`.checkpoint`, :mod:`.log`, :mod:`.trainer` (the loop).
``o1pruner.training`` (the former module) is this package.
"""

from ..data.tokenize import EncodedSamples, SequenceFormat, encode_samples
from ..models.generator import TinyLMGenerator
from .checkpoint import TRAIN_STATE_FORMAT, latest_checkpoint
from .config import TrainConfig, lr_at
from .objective import PPOConfig
from .trainer import Trainer

__all__ = [
    "TrainConfig",
    "PPOConfig",
    "TRAIN_STATE_FORMAT",
    "Trainer",
    "SequenceFormat",
    "TinyLMGenerator",
    "EncodedSamples",
    "encode_samples",
    "lr_at",
    "latest_checkpoint",
]
