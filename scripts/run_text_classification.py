#!/usr/bin/env python
"""Fine-tune a sequence classifier with the transformers Trainer; ``--optim adan`` works out of the box.

Any ``TrainingArguments`` flag applies (``--optim adan --optim_args "beta1=0.98,no_prox=true"``,
``--push_to_hub``, ...). Data: local csv/json/jsonl/parquet files (``--train_file``, ``--validation_file``,
with ``--text_column`` and ``--label_column``) or any ``datasets`` source (``--dataset_name``).

What it writes into ``--output_dir``: the model, its tokenizer, ``all_results.json`` and a model card that
names the training and validation data and records the evaluation metrics (and, with ``--optim adan``,
the optimizer's settings). No ``checkpoint-N`` folders unless ``--keep_checkpoints`` (or an explicit
``--save_strategy``) asks for them: they hold the optimizer state, several times the model's size.

The reported loss is the same on one process and on several: a model whose loss ignores transformers'
``num_items_in_batch`` (e.g. BERT classifiers) is averaged per process instead of being scaled by the
process count (``average_tokens_across_devices``).

Examples::

    python scripts/run_text_classification.py --model_name_or_path ./my-bert \\
        --train_file train.csv --validation_file dev.csv --text_column text --label_column label \\
        --output_dir out --optim adan --learning_rate 3e-4 --num_train_epochs 3

    # a tiny model from a config (no weights needed), e.g. for smoke tests:
    python scripts/run_text_classification.py --config_name bert --config_overrides \\
        "hidden_size=32,num_hidden_layers=2,num_attention_heads=2,intermediate_size=64" \\
        --tokenizer_name PATH_TO_TOKENIZER --train_file train.csv --output_dir out --optim adan

    # several processes (on a CPU-only machine add --use_cpu: two gloo processes that train together):
    accelerate launch --multi_gpu --num_processes 2 scripts/run_text_classification.py ... --use_cpu
    torchrun --nproc_per_node 2 scripts/run_text_classification.py ... --use_cpu

Installed without a checkout, the same script is ``python -m hf_ada.scripts.run_text_classification``.
An error prints one line (exit status 2: a bad argument, 1: a failure); ``HF_ADA_DEBUG=1`` shows the
traceback.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import hf_ada  # noqa: F401  (registers --optim adan)
from hf_ada.commands import UsageError, run_main
from hf_ada.commands.trainer import (
    DataArguments,
    load_config_and_tokenizer,
    load_raw_datasets,
    parse_script_args,
    train_evaluate_push,
)

logger = logging.getLogger(__name__)


@dataclass
class ClassificationDataArguments(DataArguments):
    text_column: str = field(default="text", metadata={"help": "Column holding the input text."})
    label_column: str = field(default="label", metadata={"help": "Column holding the class label."})
    max_seq_length: int = field(default=128, metadata={"help": "Truncate inputs to this many tokens."})


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Train (and evaluate) a classifier; return the metrics written to ``all_results.json``."""
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer

    model_args, data_args, training_args = parse_script_args(ClassificationDataArguments, argv,
                                                             prog="run_text_classification")

    # 1. the data: every split must have the text and label columns
    raw = load_raw_datasets(data_args)
    for name, split in raw.items():
        for flag, column in (("--text_column", data_args.text_column), ("--label_column", data_args.label_column)):
            if column not in split.column_names:
                raise UsageError(f"{flag} {column!r} is not a column of the {name} data; its columns: "
                                 f"{split.column_names}")
    labels = sorted(set(raw["train"][data_args.label_column]))
    label2id = {str(label): i for i, label in enumerate(labels)}

    # 2. the model: pretrained, or fresh from a config
    config, tokenizer = load_config_and_tokenizer(
        model_args, num_labels=len(labels), label2id=label2id, id2label={i: label for label, i in label2id.items()},
    )
    if model_args.model_name_or_path:
        model = AutoModelForSequenceClassification.from_pretrained(model_args.model_name_or_path, config=config)
    else:
        model = AutoModelForSequenceClassification.from_config(config)

    # 3. tokenize; unknown validation labels are refused (they would be silently mislabelled)
    def preprocess(batch):
        unknown = {str(label) for label in batch[data_args.label_column]} - set(label2id)
        if unknown:
            raise UsageError(f"--label_column: labels {sorted(unknown)[:5]} are not in the training data")
        encoded = tokenizer(batch[data_args.text_column], truncation=True, max_length=data_args.max_seq_length)
        encoded["labels"] = [label2id[str(label)] for label in batch[data_args.label_column]]
        return encoded

    with training_args.main_process_first(desc="tokenize"):
        processed = {name: split.map(preprocess, batched=True, remove_columns=split.column_names)
                     for name, split in raw.items()}

    def compute_metrics(pred):
        return {"accuracy": float((np.argmax(pred.predictions, axis=-1) == pred.label_ids).mean())}

    # 4. train, evaluate, save (model card naming the data), push
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=processed["train"],
        eval_dataset=processed.get("validation"),
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=compute_metrics,
    )
    names = data_args.dataset_name or [Path(p).name for p in (data_args.train_file, data_args.validation_file) if p]
    return train_evaluate_push(trainer, model_args, task="text-classification",
                               dataset_names=[names] if isinstance(names, str) else names)


if __name__ == "__main__":
    sys.exit(run_main(main, prog="run_text_classification", strip_debug=False))
