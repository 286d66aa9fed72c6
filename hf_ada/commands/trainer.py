"""The arguments of hf-ada's Trainer scripts (``scripts/run_text_classification.py``, ``scripts/run_clm.py``)
and the steps they share: loading the data, the config and the tokenizer, and the train / evaluate / save /
push tail.

The argument names mirror the transformers example scripts (``--model_name_or_path``, ``--config_name``,
``--tokenizer_name``, ``--dataset_name``, ``--train_file`` ...), plus ``--config_overrides`` so that a tiny
model can be built from a config with no weights at all. transformers is imported inside the functions, so
that ``hf-ada --help`` does not load it.
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

from ._base import DATA_FILE_BUILDERS, UsageError
from ..common.patches import Patch, apply_patches

logger = logging.getLogger(__name__)

__all__ = ["ModelArguments", "DataArguments", "load_raw_datasets", "load_config_and_tokenizer", "parse_script_args",
           "train_evaluate_push", "add_perplexity", "loss_ignores_num_items_in_batch", "script_parser",
           "warn_on_process_dependent_loss", "base_model_name"]


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
    keep_checkpoints: bool = field(default=False, metadata={
        "help": "Keep the Trainer's checkpoint-N folders (model + optimizer state, for --resume_from_checkpoint). "
                "By default a run that never asked for checkpoints (--save_strategy left at its default) writes "
                "only the final model, its card and its metrics."})


def load_raw_datasets(args: DataArguments, seed: int = 42):
    """Load ``train`` (+ ``validation``) from ``--dataset_name`` or ``--train_file``/``--validation_file``."""
    from datasets import DatasetDict, load_dataset

    if args.dataset_name:
        raw = load_dataset(args.dataset_name, args.dataset_config_name)
    elif args.train_file:
        files = {"train": args.train_file}
        if args.validation_file:
            files["validation"] = args.validation_file
        for flag, path in (("--train_file", args.train_file), ("--validation_file", args.validation_file)):
            if path is None:
                continue
            if Path(path).suffix not in DATA_FILE_BUILDERS:
                raise UsageError(f"{flag} must end in one of {sorted(DATA_FILE_BUILDERS)}, got {path!r}")
            if not Path(path).is_file():
                raise FileNotFoundError(f"{flag} {path}: no such file")
        suffixes = {Path(p).suffix for p in files.values()}
        if len({DATA_FILE_BUILDERS[s] for s in suffixes}) > 1:
            raise UsageError(f"--train_file and --validation_file must have the same format, got {sorted(suffixes)}")
        raw = load_dataset(DATA_FILE_BUILDERS[Path(args.train_file).suffix], data_files=files)
    else:
        raise UsageError("give either --dataset_name or --train_file")
    if "train" not in raw:
        raise UsageError(f"the data has no 'train' split; splits: {list(raw)}")
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
            raise UsageError(f"--config_overrides entry {item!r} is not key=value")
        for cast in (int, float):
            try:
                parsed[key.strip()] = cast(value)
                break
            except ValueError:
                continue
        else:
            parsed[key.strip()] = {"true": True, "false": False}.get(value.lower(), value)
    return parsed


def load_config_and_tokenizer(args: ModelArguments, **config_kwargs: Any):
    """Build the config (pretrained, named, or a fresh ``model_type`` config) and the tokenizer."""
    from transformers import AutoConfig, AutoTokenizer

    source = args.config_name or args.model_name_or_path
    if source is None:
        raise UsageError("give --model_name_or_path, or --config_name (path, Hub id or a model type like 'bert')")
    overrides = _parse_overrides(args.config_overrides)
    if Path(source).exists() or "/" in source:
        config = AutoConfig.from_pretrained(source, revision=args.revision, **config_kwargs)
        for key, value in overrides.items():
            setattr(config, key, value)
    else:
        config = AutoConfig.for_model(source, **overrides, **config_kwargs)
    tokenizer_source = args.tokenizer_name or args.model_name_or_path
    if tokenizer_source is None:
        raise UsageError("give --tokenizer_name when training from a config")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source, revision=args.revision)
    if getattr(config, "vocab_size", None) is not None and config.vocab_size < len(tokenizer):
        config.vocab_size = len(tokenizer)
    if getattr(config, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
        config.pad_token_id = tokenizer.pad_token_id
    return config, tokenizer


def _given_flags(argv: list[str]) -> set[str]:
    """The ``--flag`` names that appear on a command line (``--x=1`` and ``--x 1`` alike)."""
    return {token[2:].split("=", 1)[0].replace("-", "_") for token in argv if token.startswith("--")}


def script_parser(dataclasses: tuple[type, ...], prog: str | None = None):
    """An ``HfArgumentParser`` whose usage errors are one line."""
    from transformers import HfArgumentParser

    class Parser(HfArgumentParser):
        def error(self, message: str) -> None:  # type: ignore[override]
            self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    return Parser(dataclasses, prog=prog)


def parse_script_args(data_class: type, argv: list[str] | None = None, prog: str | None = None):
    """Parse ``(ModelArguments, data_class, TrainingArguments)`` from ``argv`` (or one ``.json`` file, as the
    transformers examples allow), set up logging and seed everything.

    What runs: the scripts train unless the user asked for evaluation only. transformers turns ``do_eval``
    on by itself whenever ``--eval_strategy`` is not ``no``, so only an explicit ``--do_eval`` (without
    ``--do_train``) means "evaluate only"; ``do_train`` is set accordingly here. Unless ``--keep_checkpoints``
    or a ``--save_strategy`` was given, no ``checkpoint-N`` folder is written (only the final model).
    """
    from transformers import TrainingArguments, set_seed

    parser = script_parser((ModelArguments, data_class, TrainingArguments), prog=prog)
    argv_list = sys.argv[1:] if argv is None else list(argv)
    if len(argv_list) == 1 and argv_list[0].endswith(".json"):
        model_args, data_args, training_args = parser.parse_json_file(argv_list[0])
        given = set(json.loads(Path(argv_list[0]).read_text(encoding="utf-8")))
    else:
        model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv_list)
        given = _given_flags(argv_list)
    if not training_args.do_train and "do_eval" not in given:
        training_args.do_train = True
    if not data_args.keep_checkpoints and "save_strategy" not in given and "save_steps" not in given:
        training_args.save_strategy = "no"
    logging.basicConfig(level=logging.INFO if training_args.should_log else logging.WARNING)
    set_seed(training_args.seed)
    return model_args, data_args, training_args


def loss_ignores_num_items_in_batch(model: Any, collate_fn: Callable | None, dataset: Any) -> bool | None:
    """Whether ``model``'s loss ignores the ``num_items_in_batch`` the Trainer passes to models whose
    ``forward`` takes ``**kwargs``: two no-grad forwards of the first two training rows with different counts.
    ``None`` when it cannot be told (no such keyword, an iterable dataset, a forward that fails).

    Such a model (``BertForSequenceClassification``, say) makes the Trainer report, and train on, a loss
    multiplied by the number of processes under ``average_tokens_across_devices=True``, and divided wrongly
    under gradient accumulation; the Trainer handles it right once ``model_accepts_loss_kwargs`` is False.
    """
    import inspect

    import torch

    forward = getattr(model, "forward", None)
    if forward is None or not any(p.kind == inspect.Parameter.VAR_KEYWORD
                                  for p in inspect.signature(forward).parameters.values()):
        return None
    try:
        rows = [dataset[i] for i in range(min(2, len(dataset)))]
        if not rows:
            return None
        batch = (collate_fn or (lambda r: r))(rows)
        device = next(model.parameters()).device
        batch = {k: v.to(device) if hasattr(v, "to") else v for k, v in dict(batch).items()}
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                losses = [model(**batch, num_items_in_batch=torch.tensor(n, device=device)).loss for n in (1, 1000)]
        finally:
            model.train(was_training)
    except Exception:  # noqa: BLE001  (a probe: any failure means "cannot tell")
        return None
    if losses[0] is None or not torch.isfinite(losses[0]):
        return None
    return bool(torch.allclose(losses[0], losses[1]))


def _fix_loss_scaling(trainer: Any) -> None:
    """Make the reported (and trained) loss independent of the process count and of gradient accumulation for
    a model that ignores ``num_items_in_batch`` (see :func:`loss_ignores_num_items_in_batch`)."""
    if not getattr(trainer, "model_accepts_loss_kwargs", False) or trainer.train_dataset is None:
        return
    if loss_ignores_num_items_in_batch(trainer.model, trainer.data_collator, trainer.train_dataset):
        trainer.model_accepts_loss_kwargs = False
        logger.info("the model's loss ignores num_items_in_batch: the Trainer averages it per process instead "
                    "(the same loss on any number of processes)")


_warned = False


def _add_loss_warning_callback(module: Any) -> None:
    """Append the read-only warning callback to transformers' ``DEFAULT_CALLBACKS`` (idempotent)."""
    from transformers import TrainerCallback

    if any(getattr(callback, "__name__", "") == "_ProcessDependentLossWarning" for callback in module.DEFAULT_CALLBACKS):
        return

    class _ProcessDependentLossWarning(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, train_dataloader=None, **kwargs):
            global _warned
            if _warned or args.world_size < 2 or not args.average_tokens_across_devices:
                return
            if train_dataloader is None or model is None or getattr(model, "accepts_loss_kwargs", True) is False:
                return
            dataset = getattr(train_dataloader, "dataset", None)
            if dataset is None or not hasattr(dataset, "__len__"):
                return
            if loss_ignores_num_items_in_batch(model, getattr(train_dataloader, "collate_fn", None), dataset):
                _warned = True
                if state.is_world_process_zero:
                    print(f"hf-ada: warning: {type(model).__name__}'s loss ignores num_items_in_batch, so with "
                          f"average_tokens_across_devices=True on {args.world_size} processes transformers "
                          f"reports (and trains on) {args.world_size}x the loss of a 1-process run; pass "
                          "--average_tokens_across_devices false for a loss that does not depend on the "
                          "process count", file=sys.stderr)

    module.DEFAULT_CALLBACKS.append(_ProcessDependentLossWarning)


#: What ``hf-ada run`` (only) changes in transformers (ARCHITECTURE.md lists the same row; a test checks it).
RUN_PATCHES = (
    Patch("transformers.trainer", "DEFAULT_CALLBACKS",
          "a read-only callback that warns once when a model's loss ignores `num_items_in_batch` on several processes",
          _add_loss_warning_callback),
)


def warn_on_process_dependent_loss() -> None:
    """For ``hf-ada run``: warn once when a Trainer of a third-party script trains a model whose loss ignores
    ``num_items_in_batch`` on several processes with ``average_tokens_across_devices=True`` (transformers
    then reports, and trains on, the loss times the process count). Applies :data:`RUN_PATCHES` when
    ``transformers.trainer`` is imported; the callback only reads and warns."""
    apply_patches(RUN_PATCHES)


def base_model_name(model_name_or_path: str | None) -> str | None:
    """What the model card names as the base model: the Hub name of the pip-shipped all-MiniLM-L6-v2 for its
    local folder (a card links the base model on the Hub), else ``model_name_or_path`` itself."""
    if model_name_or_path and Path(model_name_or_path).is_dir():
        try:
            from ..demo.pretrained import MINILM_NAME, minilm_path

            if Path(model_name_or_path).resolve() == minilm_path().resolve():
                return MINILM_NAME
        except Exception:  # noqa: BLE001  (the demo extra is not installed: keep the path)
            pass
    return model_name_or_path


def train_evaluate_push(
    trainer: Any,
    model_args: ModelArguments,
    task: str,
    add_eval_metrics: Callable[[dict[str, float]], None] | None = None,
    dataset_names: list[str] | None = None,
) -> dict[str, float]:
    """The common tail of the scripts: train (``do_train``, see :func:`parse_script_args`), save, evaluate
    when there is an eval set, log and save the metrics, write the model card (naming ``dataset_names`` and
    recording the evaluation metrics), and push when ``--push_to_hub``.

    Raises instead of reporting success when nothing was done: an evaluation-only run without an eval set,
    or a training run that took no optimizer step (e.g. an empty training set).
    """
    args = trainer.args
    metrics: dict[str, float] = {}
    if not args.do_train and trainer.eval_dataset is None:
        raise UsageError(
            "nothing to do: --do_eval without --do_train needs a validation set (--validation_file, "
            "--validation_split_percentage, or a dataset with a 'validation' split)"
        )
    _fix_loss_scaling(trainer)
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
    card = {"finetuned_from": base_model_name(model_args.model_name_or_path), "tasks": task}
    if dataset_names:
        card["dataset"] = dataset_names
    if args.do_train and trainer.is_world_process_zero():
        trainer.create_model_card(**card)
    if args.push_to_hub:
        trainer.push_to_hub(**card)
    return metrics


def add_perplexity(eval_metrics: dict[str, float]) -> None:
    """``perplexity = exp(eval_loss)`` (capped to stay finite), for language-model scripts."""
    eval_metrics["perplexity"] = math.exp(min(eval_metrics["eval_loss"], 50.0))
