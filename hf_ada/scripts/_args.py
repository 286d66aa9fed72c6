"""Argument dataclasses and loaders shared by the Trainer scripts of :mod:`hf_ada.scripts`.

They mirror the transformers example scripts (``--model_name_or_path``, ``--config_name``,
``--tokenizer_name``, ``--dataset_name``, ``--train_file`` ...), plus ``--config_overrides`` so that a tiny
model can be built from a config with no weights at all.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets import DatasetDict, load_dataset
from transformers import (
    AutoConfig,
    AutoTokenizer,
    HfArgumentParser,
    PretrainedConfig,
    PreTrainedTokenizerBase,
    Trainer,
    TrainingArguments,
    set_seed,
)

__all__ = [
    "ModelArguments",
    "DataArguments",
    "load_raw_datasets",
    "load_config_and_tokenizer",
    "parse_script_args",
    "train_evaluate_push",
    "add_perplexity",
]

_FILE_BUILDERS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet", ".txt": "text"}


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Pretrained model path or Hub id; leave empty to train from a config."}
    )
    config_name: str | None = field(
        default=None, metadata={"help": "Config path / Hub id, or a model type (e.g. 'bert', 'gpt2') for a fresh config."}
    )
    config_overrides: str | None = field(
        default=None, metadata={"help": "Comma-separated key=value overrides of the config, e.g. 'hidden_size=64'."}
    )
    tokenizer_name: str | None = field(default=None, metadata={"help": "Tokenizer path / Hub id (default: the model's)."})
    revision: str = field(default="main", metadata={"help": "Model revision (branch, tag or commit)."})


@dataclass
class DataArguments:
    dataset_name: str | None = field(default=None, metadata={"help": "A `datasets` source (Hub id or builder name)."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "The dataset configuration name."})
    train_file: str | None = field(default=None, metadata={"help": "Local csv/json/jsonl/parquet/txt training file."})
    validation_file: str | None = field(default=None, metadata={"help": "Local validation file (same format)."})
    validation_split_percentage: int = field(
        default=0, metadata={"help": "Hold out this percentage of train as validation when no validation split exists."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate the training set."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Truncate the validation set."})


def load_raw_datasets(args: DataArguments, seed: int = 42) -> DatasetDict:
    """Load ``train`` (+ ``validation``) from ``--dataset_name`` or ``--train_file``/``--validation_file``."""
    if args.dataset_name:
        raw = load_dataset(args.dataset_name, args.dataset_config_name)
    elif args.train_file:
        files = {"train": args.train_file}
        if args.validation_file:
            files["validation"] = args.validation_file
        suffix = Path(args.train_file).suffix
        if suffix not in _FILE_BUILDERS:
            raise ValueError(f"--train_file must end in one of {sorted(_FILE_BUILDERS)}, got {args.train_file!r}")
        raw = load_dataset(_FILE_BUILDERS[suffix], data_files=files)
    else:
        raise ValueError("Give either --dataset_name or --train_file")
    if "train" not in raw:
        raise ValueError(f"the data has no 'train' split; splits: {list(raw)}")
    if "validation" not in raw and args.validation_split_percentage > 0:
        split = raw["train"].train_test_split(test_size=args.validation_split_percentage / 100, seed=seed)
        raw = DatasetDict(train=split["train"], validation=split["test"])
    if args.max_train_samples is not None:
        raw["train"] = raw["train"].select(range(min(args.max_train_samples, len(raw["train"]))))
    if "validation" in raw and args.max_eval_samples is not None:
        raw["validation"] = raw["validation"].select(range(min(args.max_eval_samples, len(raw["validation"]))))
    return raw


def _parse_overrides(overrides: str | None) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    for item in (overrides or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--config_overrides entry {item!r} is not key=value")
        for cast in (int, float):
            try:
                parsed[key.strip()] = cast(value)
                break
            except ValueError:
                continue
        else:
            parsed[key.strip()] = {"true": True, "false": False}.get(value.lower(), value)
    return parsed


def load_config_and_tokenizer(
    args: ModelArguments, **config_kwargs: Any
) -> tuple[PretrainedConfig, PreTrainedTokenizerBase]:
    """Build the config (pretrained, named, or a fresh ``model_type`` config) and the tokenizer."""
    source = args.config_name or args.model_name_or_path
    if source is None:
        raise ValueError("Give --model_name_or_path, or --config_name (path, Hub id or a model type like 'bert')")
    overrides = _parse_overrides(args.config_overrides)
    if Path(source).exists() or "/" in source:
        config = AutoConfig.from_pretrained(source, revision=args.revision, **config_kwargs)
        for key, value in overrides.items():
            setattr(config, key, value)
    else:
        config = AutoConfig.for_model(source, **overrides, **config_kwargs)
    tokenizer_source = args.tokenizer_name or args.model_name_or_path
    if tokenizer_source is None:
        raise ValueError("Give --tokenizer_name when training from a config")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source, revision=args.revision)
    if getattr(config, "vocab_size", None) is not None and config.vocab_size < len(tokenizer):
        config.vocab_size = len(tokenizer)
    if getattr(config, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
        config.pad_token_id = tokenizer.pad_token_id
    return config, tokenizer


def _given_flags(argv: list[str]) -> set[str]:
    """The ``--flag`` names that appear on a command line (``--x=1`` and ``--x 1`` alike)."""
    return {token[2:].split("=", 1)[0].replace("-", "_") for token in argv if token.startswith("--")}


def parse_script_args(data_class: type, argv: list[str] | None = None) -> tuple[Any, Any, TrainingArguments]:
    """Parse ``(ModelArguments, data_class, TrainingArguments)`` from ``argv`` (or one ``.json`` file, as the
    transformers examples allow), set up logging and seed everything.

    What runs: the scripts train unless the user asked for evaluation only. transformers turns ``do_eval``
    on by itself whenever ``--eval_strategy`` is not ``no``, so only an explicit ``--do_eval`` (without
    ``--do_train``) means "evaluate only"; ``do_train`` is set accordingly here.
    """
    parser = HfArgumentParser((ModelArguments, data_class, TrainingArguments))
    argv_list = sys.argv[1:] if argv is None else list(argv)
    if len(argv_list) == 1 and argv_list[0].endswith(".json"):
        model_args, data_args, training_args = parser.parse_json_file(argv_list[0])
        given = set(json.loads(Path(argv_list[0]).read_text(encoding="utf-8")))
    else:
        model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv_list)
        given = _given_flags(argv_list)
    if not training_args.do_train and "do_eval" not in given:
        training_args.do_train = True
    logging.basicConfig(level=logging.INFO if training_args.should_log else logging.WARNING)
    set_seed(training_args.seed)
    return model_args, data_args, training_args


def train_evaluate_push(
    trainer: Trainer,
    model_args: ModelArguments,
    task: str,
    add_eval_metrics: Callable[[dict[str, float]], None] | None = None,
) -> dict[str, float]:
    """The common tail of the scripts: train (``do_train``, see :func:`parse_script_args`), save, evaluate
    when there is an eval set, log and save the metrics, and push when ``--push_to_hub``.

    Raises instead of reporting success when nothing was done: an evaluation-only run without an eval set,
    or a training run that took no optimizer step (e.g. an empty training set).
    """
    args = trainer.args
    metrics: dict[str, float] = {}
    if not args.do_train and trainer.eval_dataset is None:
        raise ValueError(
            "nothing to do: --do_eval without --do_train needs a validation set (--validation_file, "
            "--validation_split_percentage, or a dataset with a 'validation' split)"
        )
    if args.do_train:
        result = trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
        if trainer.state.global_step == 0:
            raise RuntimeError(
                "training finished without a single optimizer step (is the training set empty, or "
                "--max_steps 0?); no model was saved"
            )
        metrics.update(result.metrics)
        trainer.save_model()
        trainer.save_state()
    if trainer.eval_dataset is not None:
        eval_metrics = trainer.evaluate()
        if add_eval_metrics is not None:
            add_eval_metrics(eval_metrics)
        metrics.update(eval_metrics)
    trainer.log_metrics("all", metrics)
    trainer.save_metrics("all", metrics)
    if args.push_to_hub:
        trainer.push_to_hub(finetuned_from=model_args.model_name_or_path, tasks=task)
    return metrics


def add_perplexity(eval_metrics: dict[str, float]) -> None:
    """``perplexity = exp(eval_loss)`` (capped to stay finite), for language-model scripts."""
    eval_metrics["perplexity"] = math.exp(min(eval_metrics["eval_loss"], 50.0))
