"""Models trained and sampled by o1pruner's C core.

- :class:`TinyLM`, :class:`TinyLMConfig`: a small decoder-only transformer of
  the Hugging Face Qwen2 family (log-probs, training, sampling, checkpoints).
- :func:`next_token_targets`: language-modelling targets of a padded batch.
"""

from .tinylm import Generation, TinyLM, TinyLMConfig, next_token_targets

__all__ = ["TinyLM", "TinyLMConfig", "Generation", "next_token_targets"]
