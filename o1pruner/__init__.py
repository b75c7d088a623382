"""o1pruner: O1-Pruner (Length-Harmonizing Fine-Tuning) with a C core.

Make long-thinking reasoning models think shorter without losing accuracy:
pre-sample the model, score each sample by how much shorter than the model's
own average it is (with an accuracy penalty), and fine-tune off-policy with a
PPO-clip objective. See the README and ``o1pruner.show_config()``.

Public API (NumPy arrays in and out):

- rewards: :func:`reference_stats`, :func:`length_harmonizing_reward`,
  :func:`harmonize_weights`
- metrics: :func:`aes`
- fused LM head: :func:`fused_linear_logprobs`,
  :func:`fused_linear_logprobs_backward`
- runtime: :func:`set_num_threads`, :func:`get_num_threads`,
  :func:`show_config`, :func:`config`
"""

from ._config import config, get_num_threads, set_num_threads, show_config
from .fused import FusedLogprobs, FusedStats, fused_linear_logprobs, fused_linear_logprobs_backward
from .metrics import aes
from .rewards import ReferenceStats, harmonize_weights, length_harmonizing_reward, reference_stats

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "config",
    "show_config",
    "set_num_threads",
    "get_num_threads",
    "ReferenceStats",
    "reference_stats",
    "length_harmonizing_reward",
    "harmonize_weights",
    "aes",
    "FusedStats",
    "FusedLogprobs",
    "fused_linear_logprobs",
    "fused_linear_logprobs_backward",
]
