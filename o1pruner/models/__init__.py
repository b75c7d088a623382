"""Models trained and sampled by o1pruner's C core.

- :class:`TinyLM`, :class:`TinyLMConfig`: a small decoder-only transformer of
  the Hugging Face Qwen2 family (log-probs, training, sampling, checkpoints).
- :func:`next_token_targets`: language-modelling targets of a padded batch.
- :func:`load_reference`: the reference models shipped with the package (SFT
  on a built-in task: ``load_reference()`` the addition task's, reproduced
  by ``python -m dev.train_addition``, measured by ``python -m
  o1pruner.tasks.addition_report``; ``load_reference("arithmetic")`` the
  first task's, ``python -m dev.train_reference``).
"""

from .tinylm import Generation, TinyLM, TinyLMConfig, next_token_targets
from .reference_model import REFERENCE_TASKS, load_reference, reference_info, reference_path

__all__ = ["TinyLM", "TinyLMConfig", "Generation", "next_token_targets", "load_reference", "reference_info",
           "reference_path", "REFERENCE_TASKS"]
