"""O1-Pruner with Hugging Face models (``o1pruner.hf``, the documented name,
is this package): reference log-probs of responses under any causal LM, a
generator for the pipeline, and a transformers.Trainer that trains with the
public O1-Pruner loss (method.md step 3), so the training runs on the engine
researchers already use (accelerate, DeepSpeed ZeRO-3, FSDP).

Needs the optional extra ``pip install 'o1pruner[hf]'`` (torch, transformers,
accelerate). Everything here is pure PyTorch and runs on any device; on CPU the
loss equals the C core's (tests/test_hf.py).

One prompt template everywhere (:class:`o1pruner.PromptTemplate`, as in
:func:`o1pruner.presample` and :func:`o1pruner.evaluate`): it renders the
prompt to sample (:class:`HFGenerator`), to score the reference
(:func:`response_logprobs`) and to train (:class:`O1PrunerTrainer`), so
pi_ref(y|x) during training is the distribution the samples came from (a
pitfall of the public code, method.md).

Modules: :mod:`.tokenize`, :mod:`.logprobs`, :mod:`.generator`,
:mod:`.data` (dataset, collator), :mod:`.trainer`, :mod:`.testing` (a tiny
local model for tests and notebooks).
"""

from .data import RECORD_FIELDS, O1PrunerCollator, O1PrunerDataset
from .generator import HFGenerator
from .logprobs import ResponseLogprobs, response_logprob_sums, response_logprobs, sequence_logprobs
from .testing import TINY_CHAT_TEMPLATE, tiny_qwen2, tiny_tokenizer
from .tokenize import encode_pair, render_prompt
from .trainer import O1PrunerTrainer, o1pruner_loss, paper_training_arguments

__all__ = [
    "render_prompt",
    "encode_pair",
    "ResponseLogprobs",
    "response_logprobs",
    "response_logprob_sums",
    "HFGenerator",
    "o1pruner_loss",
    "O1PrunerDataset",
    "O1PrunerCollator",
    "O1PrunerTrainer",
    "paper_training_arguments",
    "tiny_tokenizer",
    "tiny_qwen2",
]
