"""``hf-ada adapt``: build, run and share an AdaNPC predictor from the command line.

Examples::

    # memory from a labelled dataset, adapt along a stream, compare with the plain model, save the predictor
    hf-ada adapt --model ./my-classifier --train-dataset train.parquet --memory-input-column text \\
        --stream test.jsonl --stream-input-column sentence --predictions-out preds.jsonl --baseline \\
        --output-dir ./my-adanpc [--push-to-hub me/my-adanpc --private]

    # adapt an existing predictor along a stream
    hf-ada adapt --predictor me/my-adanpc --stream test.jsonl --predictions-out preds.jsonl

Every input and output is checked before the memory is built: the columns exist, outputs are writable
and are not inputs. The predictions file has one JSON line per stream row: ``row`` (its index in the
stream), ``label``, ``score`` and, with ``--baseline``, the plain model's ``baseline_label`` /
``baseline_score``; ``--include-input`` adds the input itself.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from . import command
from ._base import (Parser, UsageError, check_output_folder, library_output_to_stderr, load_dataset, positive_int,
                    run_main)

logger = logging.getLogger(__name__)

__all__ = ["build_parser", "adapt_cli", "run_adapt", "main", "adapt_main"]

PREDICTOR_KIND = "AdaNPC predictor"
_INPUT_GUESSES = ("text", "sentence", "image", "audio")


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The ``adapt`` options (added to ``parser`` when given, so ``hf-ada`` can use it as a subcommand)."""
    from ..adanpc.config import INSERT_POLICIES, METHODS, METRICS, AdaNPCConfig

    parser = parser or Parser(prog="hf-ada adapt", description=__doc__)
    src = parser.add_argument_group("what to adapt")
    src.add_argument("--model", help="classification model folder or Hub repo id (with --train-dataset)")
    src.add_argument("--predictor", help="saved AdaNPC predictor folder or Hub repo id (instead of --model)")
    src.add_argument("--revision", default=None, help="Hub revision of --model / --predictor")
    src.add_argument("--train-dataset", help="labelled dataset for the memory: a data file (csv/json/jsonl/parquet), "
                     "a save_to_disk folder or a Hub dataset id")
    src.add_argument("--train-split", default="train", help="split of a Hub --train-dataset (default: %(default)s)")
    src.add_argument("--memory-input-column", default=None,
                     help="input column of --train-dataset (default: --input-column, else text/sentence/image/audio)")
    src.add_argument("--label-column", default="label", help="label column of --train-dataset (default: %(default)s)")
    src.add_argument("--input-column", default=None,
                     help="input column of both datasets, when they share it (the two flags above/below override it)")
    cfg = parser.add_argument_group("AdaNPC settings (new predictors)")
    defaults = AdaNPCConfig()
    cfg.add_argument("--k", type=positive_int, default=defaults.k, help="neighbours that vote (default: %(default)s)")
    cfg.add_argument("--temperature", type=float, default=defaults.temperature,
                     help="temperature of the similarity-weighted vote (default: %(default)s)")
    cfg.add_argument("--metric", choices=METRICS, default=defaults.metric, help="similarity (default: %(default)s)")
    cfg.add_argument("--capacity", type=positive_int, default=None, help="maximum memory entries (default: unbounded)")
    cfg.add_argument("--insert", choices=INSERT_POLICIES, default=defaults.insert,
                     help="which predictions join the memory (default: %(default)s)")
    cfg.add_argument("--confidence-threshold", type=float, default=None,
                     help="vote confidence needed to insert with --insert confident (default: calibrated on the memory)")
    cfg.add_argument("--no-guard", action="store_true",
                     help="turn off the guard: the reach gate, the agreement test, class balance and the collapse "
                     "monitor (with --insert all: the paper's rule)")
    cfg.add_argument("--reach-quantile", type=float, default=defaults.reach_quantile,
                     help="reach gate: batches farther from the memory than this quantile of the training entries' "
                     "own distances are answered by T3A and not inserted (default: %(default)s)")
    cfg.add_argument("--memory-index", choices=("auto", "flat", "ivf"), default=defaults.memory_index,
                     help="the memory's search: exact (flat), faiss IVF, or chosen by size (default: %(default)s)")
    cfg.add_argument("--reset-every", type=positive_int, default=None,
                     help="episodic mode: forget the inserted entries every N inputs (default: never)")
    cfg.add_argument("--method", choices=METHODS, default=defaults.method,
                     help="adanpc (kNN vote) or t3a (the T3A baseline) (default: %(default)s)")
    cfg.add_argument("--no-blend-t3a", action="store_true",
                     help="answer with the vote alone, not the mean of the vote's and T3A's probabilities")
    cfg.add_argument("--evict-source", action="store_true", help="at capacity, evict source entries too")
    cfg.add_argument("--feature-layer", default=None,
                     help="module whose input is the feature (default: the classification head)")
    run = parser.add_argument_group("stream")
    run.add_argument("--stream", help="data file, save_to_disk folder or Hub dataset of inputs, predicted in order")
    run.add_argument("--stream-split", default="train", help="split of a Hub --stream (default: %(default)s)")
    run.add_argument("--stream-input-column", default=None,
                     help="input column of --stream (default: --input-column, else text/sentence/image/audio)")
    run.add_argument("--stream-label-column", default=None,
                     help="optional label column of --stream for accuracies (default: --label-column if present)")
    run.add_argument("--no-adapt", action="store_true", help="only vote, insert nothing")
    run.add_argument("--baseline", action="store_true",
                     help="also write the plain model's prediction (and, with labels, print its accuracy)")
    run.add_argument("--include-input", action="store_true", help="copy each input into the predictions file")
    run.add_argument("--batch-size", type=positive_int, default=32, help="inputs per model batch (default: %(default)s)")
    run.add_argument("--predictions-out", help="write one JSON line per stream row (row, label, score, ...)")
    out = parser.add_argument_group("output")
    out.add_argument("--output-dir", help="save the predictor here (only its own files are written)")
    out.add_argument("--push-to-hub", metavar="REPO_ID", help="upload the predictor as a model repo")
    out.add_argument("--private", action="store_true", help="create the Hub repo as private")
    out.add_argument("--commit-message", default=None, help="commit message of the upload")
    out.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN / the saved login)")
    out.add_argument("--space", metavar="SPACE_ID", help="after --push-to-hub, create (or update) a Gradio Space "
                     "that serves the predictor (needs `pip install hf-ada[ui]`)")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    return parser


def _fail(message: str) -> None:
    raise UsageError(message)


def _column(flag: str, given: str | None, columns: list[str], what: str) -> str:
    if given is None:
        given = next((c for c in _INPUT_GUESSES if c in columns), None)
        if given is None:
            _fail(f"no input column found in {what} (columns {columns}); pass {flag}")
    if given not in columns:
        _fail(f"{flag} {given!r} is not a column of {what}; its columns are {columns}")
    return given


def _local(path: str | None) -> Path | None:
    return Path(path).resolve() if path and Path(path).exists() else None


def _check_outputs(args: argparse.Namespace) -> None:
    """Outputs are writable and are not inputs, before any work."""
    inputs = [p for p in (_local(args.model), _local(args.predictor), _local(args.train_dataset), _local(args.stream))
              if p is not None]
    if args.output_dir:
        check_output_folder(args.output_dir, flag="--output-dir", kind=PREDICTOR_KIND, inputs=[str(p) for p in inputs])
    if args.predictions_out:
        pred = Path(args.predictions_out).resolve()
        if pred.is_dir():
            _fail(f"--predictions-out {args.predictions_out} is a folder; give a file name")
        if any(pred == p or p in pred.parents for p in inputs):
            _fail(f"--predictions-out {args.predictions_out} would overwrite an input; choose another file")
        if args.output_dir and Path(args.output_dir).resolve() in pred.parents:
            _fail("--predictions-out must not lie inside --output-dir (the predictor's folder)")
        parent = pred.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            _fail(f"--predictions-out: folder {parent} does not exist or is not writable")
        if not args.stream:
            _fail("--predictions-out needs --stream")


def _config(args: argparse.Namespace) -> Any:
    from ..adanpc.config import AdaNPCConfig

    guard = ({"agreement": False, "class_balance": False, "collapse_window": None, "reach_quantile": None}
             if args.no_guard else {"reach_quantile": args.reach_quantile})
    try:
        return AdaNPCConfig(k=args.k, temperature=args.temperature, metric=args.metric, capacity=args.capacity,
                            insert=args.insert, confidence_threshold=args.confidence_threshold,
                            reset_every=args.reset_every, method=args.method, evict_source=args.evict_source,
                            feature_layer=args.feature_layer, blend_t3a=not args.no_blend_t3a,
                            memory_index=args.memory_index, **guard)
    except ValueError as err:
        _fail(str(err))
        raise


def _predict_stream(predictor, stream, column: str, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """AdaNPC probabilities and the plain model's softmax for every stream row, in order."""
    from tqdm.auto import tqdm

    probs, plain = [], []
    with tqdm(total=len(stream), desc="AdaNPC stream", unit="input") as bar:
        for start in range(0, len(stream), args.batch_size):
            rows = stream[start : start + args.batch_size][column]
            p, logits = predictor.predict_model_inputs(predictor.encode(rows), adapt=not args.no_adapt)
            probs.append(p)
            plain.append(logits.float().softmax(-1).cpu().numpy())
            bar.update(len(rows))
    if not probs:
        empty = np.zeros((0, predictor.num_labels), dtype=np.float32)
        return empty, empty
    return np.concatenate(probs), np.concatenate(plain)


def _run_stream(predictor, stream, column: str, label_column: str | None, args: argparse.Namespace) -> dict[str, Any]:
    from ..common.files import atomic_file

    probs, plain = _predict_stream(predictor, stream, column, args)
    predicted, baseline = probs.argmax(1), plain.argmax(1)
    summary: dict[str, Any] = {"stream_size": len(stream), "memory_size": len(predictor.memory),
                               "guard": {k: v for k, v in predictor.guard.to_dict().items() if not k.endswith("window")}}
    if label_column is not None:
        truth = predictor.label_ids(stream[label_column])
        summary["accuracy"] = float(np.mean(predicted == truth)) if len(truth) else None
        if args.baseline:
            summary["baseline_accuracy"] = float(np.mean(baseline == truth)) if len(truth) else None
    if args.predictions_out:
        inputs = stream[column] if args.include_input else None
        with atomic_file(args.predictions_out) as handle:
            for i, (row, idx) in enumerate(zip(probs, predicted)):
                record: dict[str, Any] = {"row": i, "label": predictor.id2label[int(idx)], "score": float(row[idx])}
                if args.baseline:
                    record["baseline_label"] = predictor.id2label[int(baseline[i])]
                    record["baseline_score"] = float(plain[i, baseline[i]])
                if inputs is not None:
                    value = inputs[i]
                    record["input"] = value if isinstance(value, (str, int, float)) else repr(value)[:200]
                handle.write(json.dumps(record) + "\n")
    return summary


@command("adapt", "AdaNPC test-time adaptation of a classifier over a stream")
def adapt_cli(argv: list[str] | None = None) -> int:
    """Entry point of ``hf-ada adapt`` (``argv`` without the program and subcommand names)."""
    args = build_parser().parse_args(argv)
    return run_adapt(args)


main = adapt_cli


def adapt_main(argv: list[str] | None = None) -> int:
    """``scripts/adapt_adanpc.py`` / ``python -m hf_ada.scripts.adapt_adanpc``: ``hf-ada adapt``."""
    return run_main(adapt_cli, argv, prog="adapt_adanpc")


def run_adapt(args: argparse.Namespace) -> int:
    """Run ``hf-ada adapt`` on parsed arguments: check everything, then build, run, save, push; print the
    JSON summary (the only thing on stdout)."""
    with library_output_to_stderr():
        summary = _adapt(args)
    print(json.dumps(summary, indent=2))
    return 0


def _adapt(args: argparse.Namespace) -> dict[str, Any]:
    from ..adanpc.predictor import AdaNPCPredictor

    if bool(args.model) == bool(args.predictor):
        _fail("give exactly one of --model (with --train-dataset) or --predictor")
    if not (args.stream or args.output_dir or args.push_to_hub):
        _fail("nothing to do; give --stream, --output-dir and/or --push-to-hub")
    if args.model and not args.train_dataset:
        _fail("--model needs --train-dataset (the labelled data of the memory)")
    if args.space and not args.push_to_hub:
        _fail("--space needs --push-to-hub REPO_ID (the Space serves the pushed predictor)")
    if args.space:
        from .ui import require_ui

        require_ui("--space")
    config = _config(args) if args.model else None
    _check_outputs(args)
    # every input is read and checked before the long work (the memory build)
    stream = stream_column = stream_labels = None
    if args.stream:
        stream = load_dataset(args.stream, flag="--stream", split=args.stream_split)
        stream_column = _column("--stream-input-column", args.stream_input_column or args.input_column,
                                stream.column_names, f"--stream {args.stream}")
        if args.stream_label_column is not None and args.stream_label_column not in stream.column_names:
            _fail(f"--stream-label-column {args.stream_label_column!r} is not a column of --stream {args.stream}; "
                  f"its columns are {stream.column_names}")
        stream_labels = args.stream_label_column or (args.label_column if args.label_column in stream.column_names
                                                     else None)
    if args.predictor:
        predictor = AdaNPCPredictor.from_pretrained(args.predictor, revision=args.revision, token=args.token)
    else:
        from ..adanpc.predictor import _load_model, _load_processor
        from ..common.hub import resolve_folder

        train = load_dataset(args.train_dataset, flag="--train-dataset", split=args.train_split)
        memory_column = _column("--memory-input-column", args.memory_input_column or args.input_column,
                                train.column_names, f"--train-dataset {args.train_dataset}")
        if args.label_column not in train.column_names:
            _fail(f"--label-column {args.label_column!r} is not a column of --train-dataset {args.train_dataset}; "
                  f"its columns are {train.column_names}")
        folder = resolve_folder(args.model, revision=args.revision, token=args.token)
        predictor = AdaNPCPredictor(_load_model(folder), _load_processor(folder), config)
        predictor.label_ids(train[args.label_column])  # label names checked before the memory build
        if stream_labels is not None:
            predictor.label_ids(stream[stream_labels])
        predictor.build_memory(train, input_column=memory_column, label_column=args.label_column,
                               batch_size=args.batch_size)
    summary: dict[str, Any] = {"memory_size": len(predictor.memory), "source_entries": predictor.memory.num_source}
    if stream is not None:
        summary.update(_run_stream(predictor, stream, stream_column, stream_labels, args))
    if args.output_dir:
        protected = tuple(p for p in (_local(args.train_dataset), _local(args.stream)) if p is not None)
        summary["saved_to"] = str(predictor.save_pretrained(args.output_dir, protected=protected))
    if args.push_to_hub:
        summary["pushed"] = predictor.push_to_hub(args.push_to_hub, token=args.token, private=args.private or None,
                                                  commit_message=args.commit_message)
        if args.space:
            from .ui import create_space

            summary["space"] = str(create_space(args.space, artifact_repo_id=args.push_to_hub,
                                                artifact_kind="adanpc-predictor", token=args.token))
    return summary
