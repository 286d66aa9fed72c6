#!/usr/bin/env python
"""Train (or fine-tune) a causal language model with the transformers Trainer; ``--optim adan`` works.

Texts are tokenized, concatenated and cut into ``--block_size`` blocks, as in the transformers example
``run_clm.py``. Data: local txt/csv/json/parquet files (``--train_file``, ``--validation_file`` or
``--validation_split_percentage``) or any ``datasets`` source (``--dataset_name``). Any ``TrainingArguments``
flag applies. ``--output_dir`` receives the model, the tokenizer, ``all_results.json`` (with the
perplexity) and a model card naming the data; no ``checkpoint-N`` folders unless ``--keep_checkpoints`` or
an explicit ``--save_strategy``.

Example (a GPT-2-style model from scratch)::

    python scripts/run_clm.py --config_name gpt2 \\
        --config_overrides "n_embd=256,n_layer=4,n_head=4,n_positions=256" \\
        --tokenizer_name PATH_TO_TOKENIZER --train_file corpus.txt --validation_split_percentage 5 \\
        --block_size 128 --output_dir out --optim adan --learning_rate 3e-3 --weight_decay 0.02 \\
        --do_train --do_eval --eval_strategy steps --eval_steps 100

    # several processes (CPU-only machine: add --use_cpu)
    accelerate launch --multi_gpu --num_processes 2 scripts/run_clm.py ... --use_cpu

Installed without a checkout, the same script is ``python -m hf_ada.scripts.run_clm``. An error prints one
line (exit status 2: a bad argument, 1: a failure); ``HF_ADA_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import hf_ada  # noqa: F401  (registers --optim adan)
from hf_ada.commands import UsageError, run_main
from hf_ada.commands.trainer import (
    DataArguments,
    add_perplexity,
    load_config_and_tokenizer,
    load_raw_datasets,
    parse_script_args,
    train_evaluate_push,
)

logger = logging.getLogger(__name__)


@dataclass
class LMDataArguments(DataArguments):
    text_column: str = field(default="text", metadata={"help": "Column holding the text."})
    block_size: int = field(default=128, metadata={"help": "Training sequence length (tokens)."})


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Train (and evaluate) a causal LM; return the metrics written to ``all_results.json``."""
    from transformers import AutoModelForCausalLM, Trainer, default_data_collator

    model_args, data_args, training_args = parse_script_args(LMDataArguments, argv, prog="run_clm")
    if data_args.block_size < 1:
        raise UsageError(f"--block_size must be >= 1, got {data_args.block_size}")

    # 1. the data and the model
    raw = load_raw_datasets(data_args, seed=training_args.seed)
    if data_args.text_column not in raw["train"].column_names:
        raise UsageError(f"--text_column {data_args.text_column!r} is not a column of the training data; its "
                         f"columns: {raw['train'].column_names}")
    config, tokenizer = load_config_and_tokenizer(model_args)
    if model_args.model_name_or_path:
        model = AutoModelForCausalLM.from_pretrained(model_args.model_name_or_path, config=config)
    else:
        model = AutoModelForCausalLM.from_config(config)
    block_size = data_args.block_size

    # 2. tokenize, concatenate, cut into blocks; the labels are the inputs (the model shifts them)
    def tokenize(batch):
        return tokenizer(batch[data_args.text_column], add_special_tokens=False)

    def group_texts(examples):
        concatenated = {k: list(chain(*examples[k])) for k in examples}
        total = (len(concatenated["input_ids"]) // block_size) * block_size
        result = {k: [t[i : i + block_size] for i in range(0, total, block_size)] for k, t in concatenated.items()}
        result["labels"] = [ids.copy() for ids in result["input_ids"]]
        return result

    with training_args.main_process_first(desc="tokenize and group"):
        lm = {}
        for name, split in raw.items():
            tokenized = split.map(tokenize, batched=True, remove_columns=split.column_names)
            lm[name] = tokenized.map(group_texts, batched=True)
    if len(lm["train"]) == 0:
        raise UsageError(f"--block_size {block_size}: the training text is shorter than one block")

    # 3. train, evaluate (perplexity), save, push
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=lm["train"],
        eval_dataset=lm.get("validation"),
        processing_class=tokenizer,
        data_collator=default_data_collator,
    )
    names = data_args.dataset_name or [Path(p).name for p in (data_args.train_file, data_args.validation_file) if p]
    return train_evaluate_push(trainer, model_args, task="text-generation", add_eval_metrics=add_perplexity,
                               dataset_names=[names] if isinstance(names, str) else names)


if __name__ == "__main__":
    sys.exit(run_main(main, prog="run_clm", strip_debug=False))
