"""``hf-ada adapt``: build, run and share an AdaNPC predictor from the command line.

Examples::

    # memory from a labelled dataset, save the predictor (and push it)
    hf-ada adapt --model ./my-classifier --train-dataset train.parquet --input-column text \\
        --output-dir ./my-adanpc --k 10 --temperature 0.1 [--push-to-hub me/my-adanpc --private]

    # adapt an existing predictor along a stream, write predictions, save the adapted predictor
    hf-ada adapt --predictor me/my-adanpc --stream test.jsonl --predictions-out preds.jsonl --output-dir ./adapted
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from .config import INSERT_POLICIES, METRICS, AdaNPCConfig

logger = logging.getLogger(__name__)

__all__ = ["build_parser", "adapt_cli"]

_FILE_BUILDERS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet", ".txt": "text"}


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The ``adapt`` options (added to ``parser`` when given, so ``hf-ada`` can use it as a subcommand)."""
    parser = parser or argparse.ArgumentParser(prog="hf-ada adapt", description=__doc__.splitlines()[0])
    src = parser.add_argument_group("what to adapt")
    src.add_argument("--model", help="classification model folder or Hub repo id (with --train-dataset)")
    src.add_argument("--predictor", help="saved AdaNPC predictor folder or Hub repo id (instead of --model)")
    src.add_argument("--revision", default=None, help="Hub revision of --model / --predictor")
    src.add_argument("--train-dataset", help="labelled dataset for the memory: a data file or a Hub dataset id")
    src.add_argument("--train-split", default="train")
    src.add_argument("--input-column", default=None, help="input column (default: text/image/audio guess)")
    src.add_argument("--label-column", default="label")
    cfg = parser.add_argument_group("AdaNPC settings (new predictors)")
    defaults = AdaNPCConfig()
    cfg.add_argument("--k", type=int, default=defaults.k)
    cfg.add_argument("--temperature", type=float, default=defaults.temperature)
    cfg.add_argument("--metric", choices=METRICS, default=defaults.metric)
    cfg.add_argument("--capacity", type=int, default=None)
    cfg.add_argument("--insert", choices=INSERT_POLICIES, default=defaults.insert)
    cfg.add_argument("--confidence-threshold", type=float, default=defaults.confidence_threshold)
    cfg.add_argument("--evict-source", action="store_true")
    cfg.add_argument("--feature-layer", default=None)
    run = parser.add_argument_group("stream")
    run.add_argument("--stream", help="data file or Hub dataset of test inputs, predicted (and inserted) in order")
    run.add_argument("--stream-split", default="train")
    run.add_argument("--no-adapt", action="store_true", help="only vote, insert nothing")
    run.add_argument("--batch-size", type=int, default=32)
    run.add_argument("--predictions-out", help="write one JSON line per stream input (label, score)")
    out = parser.add_argument_group("output")
    out.add_argument("--output-dir", help="save the predictor here (atomically)")
    out.add_argument("--push-to-hub", metavar="REPO_ID", help="upload the predictor as a model repo")
    out.add_argument("--private", action="store_true")
    out.add_argument("--commit-message", default=None)
    out.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN / the saved login)")
    return parser


def _load_dataset(name: str, split: str):
    import datasets

    path = Path(name)
    if path.suffix in _FILE_BUILDERS and path.is_file():
        return datasets.load_dataset(_FILE_BUILDERS[path.suffix], data_files=str(path), split="train")
    if path.is_dir():
        try:
            return datasets.load_from_disk(str(path))
        except FileNotFoundError:
            pass
    return datasets.load_dataset(name, split=split)


def _new_predictor(args: argparse.Namespace):
    from ..common.hub import resolve_folder
    from .predictor import AdaNPCPredictor, _load_model, _load_processor

    if not args.train_dataset:
        raise SystemExit("hf-ada adapt: --model needs --train-dataset (the labelled data of the memory)")
    folder = resolve_folder(args.model, revision=args.revision, token=args.token)
    config = AdaNPCConfig(k=args.k, temperature=args.temperature, metric=args.metric, capacity=args.capacity,
                          insert=args.insert, confidence_threshold=args.confidence_threshold,
                          evict_source=args.evict_source, feature_layer=args.feature_layer)
    predictor = AdaNPCPredictor(_load_model(folder), _load_processor(folder), config)
    train = _load_dataset(args.train_dataset, args.train_split)
    predictor.build_memory(train, input_column=args.input_column, label_column=args.label_column,
                           batch_size=args.batch_size)
    return predictor


def _run_stream(predictor, args: argparse.Namespace) -> dict[str, Any]:
    from ..common.files import atomic_file

    stream = _load_dataset(args.stream, args.stream_split)
    column = args.input_column
    if column is None:
        column = next((c for c in ("text", "sentence", "image", "audio") if c in stream.column_names), None)
    if column not in stream.column_names:
        raise SystemExit(f"hf-ada adapt: --input-column {column!r} not in the stream's columns {stream.column_names}")
    probs = predictor.predict(stream[column], adapt=not args.no_adapt, batch_size=args.batch_size)
    predicted = probs.argmax(1)
    summary: dict[str, Any] = {"stream_size": len(stream), "memory_size": len(predictor.memory)}
    if args.label_column in stream.column_names:
        truth = predictor.label_ids(stream[args.label_column])
        summary["accuracy"] = float(np.mean(predicted == truth))
    if args.predictions_out:
        with atomic_file(args.predictions_out) as handle:
            for row, idx in zip(probs, predicted):
                handle.write(json.dumps({"label": predictor.id2label[int(idx)], "score": float(row[idx])}) + "\n")
    return summary


def adapt_cli(argv: list[str] | None = None) -> int:
    """Entry point of ``hf-ada adapt`` (``argv`` without the program and subcommand names)."""
    args = build_parser().parse_args(argv)
    return run_adapt(args)


def run_adapt(args: argparse.Namespace) -> int:
    """Run ``hf-ada adapt`` on parsed arguments."""
    from .predictor import AdaNPCPredictor

    if bool(args.model) == bool(args.predictor):
        raise SystemExit("hf-ada adapt: give exactly one of --model (with --train-dataset) or --predictor")
    if not (args.stream or args.output_dir or args.push_to_hub):
        raise SystemExit("hf-ada adapt: nothing to do; give --stream, --output-dir and/or --push-to-hub")
    if args.predictor:
        predictor = AdaNPCPredictor.from_pretrained(args.predictor, revision=args.revision, token=args.token)
    else:
        predictor = _new_predictor(args)
    summary: dict[str, Any] = {"memory_size": len(predictor.memory), "source_entries": predictor.memory.num_source}
    if args.stream:
        summary.update(_run_stream(predictor, args))
    if args.output_dir:
        summary["saved_to"] = str(predictor.save_pretrained(args.output_dir))
    if args.push_to_hub:
        summary["pushed"] = predictor.push_to_hub(args.push_to_hub, token=args.token, private=args.private or None,
                                                  commit_message=args.commit_message)
    print(json.dumps(summary, indent=2))
    return 0
