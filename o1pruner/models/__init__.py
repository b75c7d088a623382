"""Models trained and sampled by o1pruner's C core.

- :class:`TinyLM`, :class:`TinyLMConfig`: a small decoder-only transformer of
  the Hugging Face Qwen2 family (log-probs, training, sampling, checkpoints).
- :func:`next_token_targets`: language-modelling targets of a padded batch.
- :func:`load_reference`: the reference model shipped with the package (SFT
  on the built-in arithmetic task; ``python -m dev.train_reference``
  reproduces it, ``python -m dev.reference_report`` measures it).
"""

from .tinylm import Generation, TinyLM, TinyLMConfig, next_token_targets
from .reference_model import load_reference, reference_info, reference_path

__all__ = ["TinyLM", "TinyLMConfig", "Generation", "next_token_targets", "load_reference", "reference_info",
           "reference_path"]
