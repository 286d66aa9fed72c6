#!/usr/bin/env python
"""Fine-tune a sequence classifier with the transformers Trainer; ``--optim adan`` works out of the box.

Any ``TrainingArguments`` flag applies (``--optim adan --optim_args "beta1=0.98,no_prox=true"``,
``--push_to_hub``, ...). Data: local csv/json/jsonl/parquet files or any ``datasets`` source.

Examples::

    python scripts/run_text_classification.py --model_name_or_path ./my-bert \\
        --train_file train.csv --validation_file dev.csv --text_column text --label_column label \\
        --output_dir out --optim adan --learning_rate 3e-4 --num_train_epochs 3

    # a tiny model from a config (no weights needed), e.g. for smoke tests:
    python scripts/run_text_classification.py --config_name bert --config_overrides \\
        "hidden_size=32,num_hidden_layers=2,num_attention_heads=2,intermediate_size=64" \\
        --tokenizer_name PATH_TO_TOKENIZER ...

    # multi-process:
    accelerate launch --multi_gpu --num_processes 2 scripts/run_text_classification.py ...
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

import hf_ada  # noqa: F401  (registers --optim adan)
from hf_ada.scripts._args import (
    DataArguments,
    load_config_and_tokenizer,
    load_raw_datasets,
    parse_script_args,
    train_evaluate_push,
)
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer

logger = logging.getLogger(__name__)


@dataclass
class ClassificationDataArguments(DataArguments):
    text_column: str = field(default="text", metadata={"help": "Column holding the input text."})
    label_column: str = field(default="label", metadata={"help": "Column holding the class label."})
    max_seq_length: int = field(default=128, metadata={"help": "Truncate inputs to this many tokens."})


def main(argv: list[str] | None = None) -> dict[str, float]:
    model_args, data_args, training_args = parse_script_args(ClassificationDataArguments, argv)

    raw = load_raw_datasets(data_args)
    for split in raw.values():
        for column in (data_args.text_column, data_args.label_column):
            if column not in split.column_names:
                raise ValueError(f"column {column!r} not found; available columns: {split.column_names}")
    labels = sorted(set(raw["train"][data_args.label_column]))
    label2id = {str(label): i for i, label in enumerate(labels)}

    config, tokenizer = load_config_and_tokenizer(
        model_args,
        num_labels=len(labels),
        label2id=label2id,
        id2label={i: label for label, i in label2id.items()},
    )
    if model_args.model_name_or_path:
        model = AutoModelForSequenceClassification.from_pretrained(model_args.model_name_or_path, config=config)
    else:
        model = AutoModelForSequenceClassification.from_config(config)

    def preprocess(batch):
        encoded = tokenizer(batch[data_args.text_column], truncation=True, max_length=data_args.max_seq_length)
        encoded["labels"] = [label2id[str(label)] for label in batch[data_args.label_column]]
        return encoded

    with training_args.main_process_first(desc="tokenize"):
        processed = {
            name: split.map(preprocess, batched=True, remove_columns=split.column_names) for name, split in raw.items()
        }

    def compute_metrics(pred):
        return {"accuracy": float((np.argmax(pred.predictions, axis=-1) == pred.label_ids).mean())}

    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=processed["train"],
        eval_dataset=processed.get("validation"),
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=compute_metrics,
    )
    return train_evaluate_push(trainer, model_args, task="text-classification")

if __name__ == "__main__":
    main()
