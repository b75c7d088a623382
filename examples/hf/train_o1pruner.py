"""Fine-tune a Hugging Face causal LM with O1-Pruner (the public loss) on a
weighted training set, with the paper's hyper-parameters.

Input: the JSONL written by ``o1pruner.build_dataset(..., out=...)``,
``WeightedDataset.to_jsonl`` or ``o1pruner.streaming.build_dataset_streaming``
(records with problem, solution, weight, and the prompt they were sampled
with). The frozen reference's log-probs are computed once with the same
(sharded) model before training and saved next to the output, so a rerun
skips that pass; no second model copy is kept.

Single process (CPU or one GPU)::

    python examples/hf/train_o1pruner.py --model Qwen/Qwen2.5-0.5B-Instruct \\
        --data train.jsonl --output runs/o1p

Several GPUs with DeepSpeed ZeRO-3 (the paper's scale)::

    accelerate launch --config_file examples/hf/accelerate_zero3.yaml \\
        examples/hf/train_o1pruner.py --model AIDC-AI/Marco-o1 --preset marco-o1-7b \\
        --data train.jsonl --output runs/marco --bf16 --gradient-checkpointing \\
        --deepspeed examples/hf/ds_zero3.json --max-length 3072
"""

from __future__ import annotations

import argparse
import os
import sys


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="model name or path (AutoModelForCausalLM)")
    p.add_argument("--data", required=True, help="weighted training records (JSONL)")
    p.add_argument("--output", required=True, help="output folder (checkpoints, final model, records with reference)")
    p.add_argument("--preset", default="marco-o1-7b", choices=["marco-o1-7b", "qwq-32b"],
                   help="paper hyper-parameters: lr 2e-7 (Marco-o1-7B) or 2e-6 (QwQ-32B); 1 epoch, cosine, "
                        "warmup 0.1, grad-norm clip 10, effective batch 32")
    p.add_argument("--lr", type=float, default=None, help="override the preset's learning rate")
    p.add_argument("--system", default=None, help="system prompt of the template the samples were drawn with")
    p.add_argument("--user", default="{problem}", help="user turn of that template ({problem} is replaced)")
    p.add_argument("--max-length", type=int, default=None, help="token cutoff (paper: 3072 Marco-o1, 4096 QwQ)")
    p.add_argument("--per-device-batch", type=int, default=1)
    p.add_argument("--batch", type=int, default=32, help="effective batch (per device x accumulation x devices)")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--deepspeed", default=None, help="DeepSpeed config JSON (e.g. examples/hf/ds_zero3.json)")
    p.add_argument("--max-steps", type=int, default=-1, help="stop early (smoke runs)")
    p.add_argument("--reference-only", action="store_true", help="compute the reference log-probs, save, exit")
    p.add_argument("--use-cpu", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse(argv)
    import torch
    import transformers

    import o1pruner
    import o1pruner.io as io
    from o1pruner.hf import O1PrunerTrainer, paper_training_arguments

    world = int(os.environ.get("WORLD_SIZE", "1"))
    accum = max(1, a.batch // (a.per_device_batch * world))
    extra = dict(per_device_train_batch_size=a.per_device_batch, per_device_eval_batch_size=a.per_device_batch,
                 gradient_accumulation_steps=accum, bf16=a.bf16, gradient_checkpointing=a.gradient_checkpointing,
                 max_steps=a.max_steps, use_cpu=a.use_cpu, save_strategy="no")
    if a.lr is not None:
        extra["learning_rate"] = a.lr
    if a.deepspeed:
        extra["deepspeed"] = a.deepspeed
    # the TrainingArguments first: under ZeRO-3 they make from_pretrained load the
    # weights already sharded across the GPUs
    args = paper_training_arguments(a.output, model=a.preset, **extra)
    tok = transformers.AutoTokenizer.from_pretrained(a.model)
    dtype_kw = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    model = transformers.AutoModelForCausalLM.from_pretrained(
        a.model, **{dtype_kw: torch.bfloat16 if a.bf16 else torch.float32})
    template = o1pruner.PromptTemplate(a.user, system=a.system)

    ref_path = os.path.join(a.output, "records_with_reference.jsonl")
    src = ref_path if os.path.exists(ref_path) else a.data
    records = list(io.read_jsonl(src))
    trainer = O1PrunerTrainer(model=model, args=args, train_dataset=records, processing_class=tok,
                              template=template, max_length=a.max_length)
    ds = trainer.train_dataset
    if ds.missing_reference().size:
        trainer.compute_reference()
        if trainer.is_world_process_zero():
            os.makedirs(a.output, exist_ok=True)
            io.write_jsonl(ref_path, ds.records(records))
            print(f"reference log-probs of {len(ds)} records saved to {ref_path}")
    if ds.num_truncated:
        print(f"{ds.num_truncated} responses truncated to max_length={ds.max_length}")
    if a.reference_only:
        return 0
    trainer.train()
    trainer.save_model(os.path.join(a.output, "final"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
