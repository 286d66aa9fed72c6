"""``python -m hf_ada.ui`` / ``hf-ada ui``: serve the web interface on this machine.

Without ``--index``, ``--predictor`` or ``--train-dir`` it opens what ``hf-ada demo`` wrote into ``--demo``
(default ``./hf-ada-demo``): the AdANNS index, the AdaNPC predictor with the demo's rotated-digits stream,
and the Adan-trained classifier. A tab whose input cannot be loaded shows why, in the page.

Examples::

    python -m hf_ada.ui                                   # the demo's artifacts
    python -m hf_ada.ui --index out/packages-index --dataset data/packages.parquet \\
        --show-column package --show-column synopsis
    python -m hf_ada.ui --predictor out/section-adanpc --stream data/stream.csv --train-dir out/section-classifier
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger("hf_ada.ui")

__all__ = ["main", "build_parser", "load_sessions"]


def build_parser() -> argparse.ArgumentParser:
    """The ``hf-ada ui`` argument parser."""
    parser = argparse.ArgumentParser(prog="hf-ada ui", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    search = parser.add_argument_group("Search tab")
    search.add_argument("--index", help="saved AdANNS index folder, or a Hub dataset repo id holding one")
    search.add_argument("--index-subfolder", help="folder of the index inside a Hub repo (default: the one under adanns/)")
    search.add_argument("--dataset", help="the rows the index was built on: a data file, a save_to_disk folder or a Hub "
                        "dataset id (without it hits show row numbers only)")
    search.add_argument("--split", default="train", help="split of a Hub or save_to_disk --dataset (default: train)")
    search.add_argument("--model", help="SentenceTransformer that embeds the queries (default: the index's own)")
    search.add_argument("--show-column", action="append", default=None,
                        help="dataset column shown for each hit (repeatable; default: up to three text columns)")
    search.add_argument("--no-check-rows", action="store_true",
                        help="do not refuse a --dataset whose rows cannot be matched to the index's")
    adapt = parser.add_argument_group("Adapt tab")
    adapt.add_argument("--predictor", help="saved AdaNPC predictor folder or Hub model repo id")
    adapt.add_argument("--stream", help="default stream: a data file, a save_to_disk folder or a Hub dataset id "
                       "(the page can upload another)")
    adapt.add_argument("--stream-input-column", help="input column of the stream (default: text/sentence/image/audio)")
    adapt.add_argument("--stream-label-column", help="label column of the stream (default: label, if present)")
    train = parser.add_argument_group("Train tab")
    train.add_argument("--train-dir", help="a Trainer output folder (trainer_state.json and/or its model card)")
    parser.add_argument("--demo", type=Path, default=Path("hf-ada-demo"),
                        help="folder `hf-ada demo` wrote, used when no artifact is given (default: ./hf-ada-demo)")
    parser.add_argument("--revision", help="Hub revision of --index / --predictor")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default: 127.0.0.1; 0.0.0.0 "
                        "for every interface)")
    parser.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    parser.add_argument("--check", action="store_true",
                        help="load everything, print one JSON line saying what loaded (or why not), do not serve")
    return parser


def _demo_defaults(args: argparse.Namespace) -> None:
    from .adapt import DEMO_STREAM

    demo = args.demo.expanduser()
    index, predictor = demo / "adanns" / "adanns_index", demo / "adanpc" / "adanpc_digits_predictor"
    train = demo / "adan" / "adan-digits-classifier"
    if not demo.is_dir():
        logger.warning("no --index, --predictor or --train-dir and no demo folder %s: run `hf-ada demo` first, or "
                       "name your artifacts", demo)
        return
    args.index = str(index) if index.is_dir() else None
    # the demo's rows and query model (MiniLM + its Matryoshka head), where the demo saved them
    corpus, query_model = demo / "adanns" / "corpus.parquet", demo / "adanns" / "query_model"
    args.dataset = args.dataset or (str(corpus) if corpus.is_file() else None)
    args.model = args.model or (str(query_model) if query_model.is_dir() else None)
    if predictor.is_dir():
        args.predictor, args.stream = str(predictor), args.stream or DEMO_STREAM
    args.train_dir = str(train) if train.is_dir() else None


def load_sessions(args: argparse.Namespace) -> dict[str, Any]:
    """``{"search": ..., "adapt": ..., "train": ...}``: a loaded session, an error message, or ``None``."""
    from .adapt import AdaptSession
    from .search import SearchSession
    from .sources import UIError, describe_error
    from .train import read_run

    if not (args.index or args.predictor or args.train_dir):
        _demo_defaults(args)
    loaders = {
        "search": (args.index, lambda: SearchSession(
            args.index, args.dataset, model=args.model, show_columns=args.show_column, split=args.split,
            subfolder=args.index_subfolder, revision=args.revision, check_rows=not args.no_check_rows)),
        "adapt": (args.predictor, lambda: AdaptSession(
            args.predictor, args.stream, input_column=args.stream_input_column,
            label_column=args.stream_label_column, revision=args.revision)),
        "train": (args.train_dir, lambda: read_run(args.train_dir)),
    }
    sessions: dict[str, Any] = {}
    for name, (given, load) in loaders.items():
        if not given:
            sessions[name] = None
            continue
        try:
            sessions[name] = load()
        except UIError as err:
            sessions[name] = str(err)
        except Exception as err:  # noqa: BLE001 - shown in the tab, the traceback in the log
            logger.exception("hf-ada ui: loading the %s tab failed", name)
            sessions[name] = f"could not load: {describe_error(err)}"
    return sessions


def _warm_up(sessions: dict[str, Any]) -> Callable[[], None]:
    """A callable that, the first time it is called (when the first page has loaded: loading models while
    the page is being served would slow its first paint), loads the query model and a predictor in the
    background, so the first search or run does not wait for them."""
    import threading

    from .adapt import AdaptSession
    from .search import SearchSession
    from .sources import UIError

    jobs = []
    if isinstance(sessions.get("search"), SearchSession):
        jobs.append(sessions["search"].load_model)
    if isinstance(sessions.get("adapt"), AdaptSession):
        jobs.append(sessions["adapt"].warm_up)

    def load() -> None:
        for job in jobs:
            try:
                job()
            except UIError:
                pass  # the page shows it when the tab is used

    started = threading.Event()

    def start() -> None:
        if jobs and not started.is_set():
            started.set()
            threading.Thread(target=load, name="hf-ada-ui-warm-up", daemon=True).start()

    return start


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m hf_ada.ui`` and ``hf-ada ui`` (``argv`` without the program name)."""
    started = time.perf_counter()
    args = build_parser().parse_args(argv)
    if not 0 <= args.port <= 65535:
        build_parser().error(f"--port must be in 0..65535, got {args.port}")
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        for noisy in ("httpx", "httpcore", "urllib3", "gradio", "uvicorn", "datasets", "transformers"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    sessions = load_sessions(args)
    if args.check:
        print(json.dumps({name: ("loaded" if not isinstance(s, str) and s is not None else s)
                          for name, s in sessions.items()}))
        return 0 if all(not isinstance(s, str) for s in sessions.values()) else 1
    from .app import build_app, launch

    app = build_app(**sessions, on_page_load=_warm_up(sessions))
    port = args.port or None
    print(f"hf-ada ui: serving on http://{args.host}:{port or 7860} (loaded in {time.perf_counter() - started:.1f} s; "
          "Ctrl+C stops it)", file=sys.stderr)
    try:
        launch(app, host=args.host, port=port, block=True)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
