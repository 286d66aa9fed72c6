#!/usr/bin/env python
"""Graph search on Matryoshka prefixes vs faiss HNSW32 at full dim: how much faster could any graph plan be?

AdANNS's choice (``bench_adanns.py``) can only be as fast as the best plan on offer. This benchmark asks what
the graph plans could give at best, on one corpus, one faiss thread, all on the same test queries:

* **faiss HNSW32** on the 384 dims (efConstruction 40, faiss's default): the index a user attaches;
* **AdANNS's HNSW32 on 384 dims**: the same graph built with AdANNS's ``hnsw_ef_construction`` (``add_graph``,
  searched with ``search_batch(scan="hnsw", d_search=384, ef_search=...)``);
* **another M** at that efConstruction: M = 16 / 24 / 48 (the "graph M chosen by measuring" question);
* **AdANNS prefix graphs**: HNSW32 over the 64 / 128 / 192-dim prefix, re-ranked on 384 dims
  (``AdANNSIndex.add_graph`` then ``search_batch(scan="hnsw", d_search=d, ef_search=..., d_rerank=384,
  rerank_k=...)``: the plans ``tune()`` can choose);
* **the full-dim graph walked on a prefix**: AdANNS's HNSW32 links over 384 dims, with the distances of the
  walk computed on the 128 / 192 / 256-dim prefix, then re-ranked on 384 dims (a plan AdANNS does not offer).

Each family is swept over a fine efSearch ladder (and re-rank depths). The table gives, at each recall level,
the fastest setting of each family reaching it and its ratio to the fastest HNSW32 efSearch reaching it.
Both sides pick their best setting on the test queries themselves (an oracle for every family alike): the
ratios are upper bounds of what a choice made on other queries can reach, which is the point here.

Writes ``benchmarks/results/<name>.md``, ``<name>.png`` and ``<name>.json`` (default name ``adanns_graphs``).
Command: ``python benchmarks/bench_adanns_graphs.py`` (the full 61k Debian corpus; ``--corpus man``,
``--num-docs 8000`` for the others).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _adanns_corpus import corpus_arguments, matryoshka_split, nn_truth  # noqa: E402

EF_LADDER = (10, 12, 16, 20, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256)
RERANK_DEPTHS = (20, 40, 80)
LEVELS = (0.80, 0.85, 0.88, 0.90, 0.92, 0.94, 0.95)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    corpus_arguments(parser, num_docs=0, name="adanns_graphs")
    parser.add_argument("--num-eval", type=int, default=1000, help="test queries")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per setting (best kept)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    import faiss
    import numpy as np

    from _machine import cpu_name, load_average

    from hf_ada.adanns import AdANNSConfig, AdANNSIndex, retrieval_metrics
    from hf_ada.adanns.tuning import best_time
    from hf_ada.adanns.vectors import prefix
    from hf_ada.demo.plots import plot_fronts

    t0 = time.perf_counter()
    load_start = load_average()
    split = matryoshka_split(args.corpus, args.num_docs, num_eval=args.num_eval)
    docs, queries = split.docs, split.test
    n = len(docs)
    x384, q384 = prefix(docs, 384, "ip"), prefix(queries, 384, "ip")
    flat = faiss.IndexFlatIP(384)
    flat.add(x384)
    truth = nn_truth(flat, queries)

    def point(family: str, label: str, search) -> dict:
        seconds, rows = best_time(search, args.repeats)
        return {"family": family, "label": label, "qps": len(queries) / seconds,
                "recall": retrieval_metrics(rows, truth, 10)["recall"]}

    builds: dict[str, float] = {}

    def hnsw(m: int, ef_construction: int = 40, dim: int = 384) -> faiss.IndexHNSWFlat:
        faiss.omp_set_num_threads(2)
        start = time.perf_counter()
        index = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        index.add(x384 if dim == 384 else prefix(docs, dim, "ip"))
        builds[f"HNSW M={m} efConstruction={ef_construction} on {dim} dims"] = time.perf_counter() - start
        faiss.omp_set_num_threads(1)
        return index

    points: list[dict] = []
    structures = [("faiss HNSW32 (384 dims)", hnsw(32))]
    # AdANNS's own graphs (its default efConstruction), searched through its public plan settings
    faiss.omp_set_num_threads(2)
    adanns = AdANNSIndex.build(docs, AdANNSConfig(dim=384, nlist=1), show_progress=False)
    efc = adanns.config.ef_construction  # the wider build tune() may choose (its default for graphs built untuned)
    for d in (384, 64, 128, 192):
        start = time.perf_counter()
        adanns.add_graph(d, 32)
        builds[f"AdANNS HNSW32 on {d} dims (efConstruction {efc})"] = time.perf_counter() - start
    faiss.omp_set_num_threads(1)
    structures += [(f"HNSW{m}, efConstruction {efc} (384 dims)", hnsw(m, efc)) for m in (16, 24, 48)]
    for family, index in structures:
        for ef in EF_LADDER:
            params = faiss.SearchParametersHNSW(efSearch=ef)
            points.append(point(family, f"efSearch={ef}", lambda: index.search(q384, 10, params=params)[1]))
        print(f"{family} ({time.perf_counter() - t0:.0f}s)", flush=True)
    family = f"AdANNS HNSW32 on 384 dims (efConstruction {efc})"
    for ef in EF_LADDER:
        settings = {"scan": "hnsw", "d_search": 384, "ef_search": ef, "d_rerank": None}
        points.append(point(family, f"efSearch={ef}", lambda s=settings: adanns.search_batch(queries, 10, **s)[1]))
    for d in (64, 128, 192):
        family = f"AdANNS HNSW32 on {d} dims + re-rank on 384"
        for ef in EF_LADDER:
            for depth in (r for r in RERANK_DEPTHS if r <= ef):
                settings = {"scan": "hnsw", "d_search": d, "ef_search": ef, "d_rerank": 384, "rerank_k": depth}
                points.append(point(family, f"efSearch={ef}, re-rank top {depth}",
                                    lambda s=settings: adanns.search_batch(queries, 10, **s)[1]))
        print(f"{family} ({time.perf_counter() - t0:.0f}s)", flush=True)

    # the full-dim graph's links, walked with prefix distances (faiss HNSW over a prefix storage), re-ranked
    full = adanns.storage.hnsw(384)  # AdANNS's full-dim graph

    def top10(rows: np.ndarray) -> np.ndarray:
        """The candidate rows re-ranked on 384 dims by AdANNS's own re-rank (faiss), the best 10 kept."""
        scores = adanns.storage.rerank(queries, rows, 384)
        return np.take_along_axis(rows, np.argsort(-scores, axis=1, kind="stable")[:, :10], axis=1)
    for d in (128, 192, 256):
        storage = faiss.IndexFlatIP(d)
        storage.add(np.ascontiguousarray(x384[:, :d]))
        walk = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
        walk.hnsw = full.hnsw  # the same links
        walk.storage, walk.ntotal, walk.is_trained = storage, full.ntotal, True
        walk.own_fields = False
        qd = np.ascontiguousarray(q384[:, :d])
        family = f"AdANNS's HNSW32 links of 384 dims walked on {d} dims + re-rank on 384"
        for ef in EF_LADDER:
            for depth in (r for r in RERANK_DEPTHS if r <= ef):
                params = faiss.SearchParametersHNSW(efSearch=ef)
                points.append(point(family, f"efSearch={ef}, re-rank top {depth}",
                                    lambda params=params, depth=depth, walk=walk, qd=qd:
                                    top10(walk.search(qd, depth, params=params)[1])))
        print(f"{family} ({time.perf_counter() - t0:.0f}s)", flush=True)

    families = list(dict.fromkeys(p["family"] for p in points))
    reference = families[0]

    def fastest(family: str, level: float) -> dict | None:
        reach = [p for p in points if p["family"] == family and p["recall"] >= level]
        return max(reach, key=lambda p: p["qps"]) if reach else None

    table = []
    for level in LEVELS:
        ref = fastest(reference, level)
        row = {"level": level, "reference": ref, "families": {}}
        for family in families[1:]:
            best = fastest(family, level)
            row["families"][family] = best and {**best, "ratio": best["qps"] / ref["qps"] if ref else None}
        table.append(row)
    total_s = time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    fronts = {family: _front([p for p in points if p["family"] == family]) for family in families}
    plot = plot_fronts(fronts, args.out / f"{args.name}.png", flops=False,
                       title=f"{args.corpus}: {n} docs, {len(queries)} test queries, 1 thread: graph plans")
    report = _markdown(args, n, len(queries), table, families, fronts, builds, total_s, cpu_name(), load_start,
                       load_average())
    (args.out / f"{args.name}.md").write_text(report, encoding="utf-8")
    payload = {"args": {k: str(v) for k, v in vars(args).items()}, "points": points, "builds": builds,
               "seconds": total_s}
    (args.out / f"{args.name}.json").write_text(json.dumps(payload, indent=1), encoding="utf-8")
    print(report)
    print(f"wrote {args.out / (args.name + '.md')}, {plot}")
    return payload


def _front(points: list[dict]) -> list[dict]:
    """The family's recall / queries-per-second front (no setting both slower and less accurate)."""
    out, best = [], -1.0
    for p in sorted(points, key=lambda p: -p["qps"]):
        if p["recall"] > best:
            out.append(p)
            best = p["recall"]
    return out


def _markdown(args, n, n_test, table, families, fronts, builds, total_s, cpu, load_start, load_end) -> str:
    reference = families[0]
    lines = [
        f"# Graph plans on Matryoshka prefixes vs faiss HNSW32: {args.corpus} corpus", "",
        f"Command: `python benchmarks/bench_adanns_graphs.py {' '.join(sys.argv[1:])}` ({total_s / 60:.1f} min on "
        f"{cpu}, {os.cpu_count()} CPU cores; load average {load_start} at the start, {load_end} at the end; "
        "1 faiss thread for every search, 2 for the builds).", "",
        f"{n} documents, {n_test} test queries (the held-out queries of `bench_adanns.py`, same MiniLM + Matryoshka "
        "head); recall = NN recall@10 of exact search's top 10. Every family is swept over efSearch "
        f"{', '.join(map(str, EF_LADDER))} (and re-rank depths {', '.join(map(str, RERANK_DEPTHS))}); each cell is "
        f"the fastest setting of the family reaching the row's recall, and its queries/s as a ratio to the fastest "
        f"{reference} efSearch reaching it. **Both sides choose on the test queries themselves** (an oracle for "
        "every family alike): the ratios are upper bounds of what a plan chosen on other queries can reach.", "",
        "Build seconds (2 threads): " + ", ".join(f"{k} {v:.1f}" for k, v in builds.items()) + ".", "",
        "| recall >= | " + f"{reference} | " + " | ".join(families[1:]) + " |",
        "| ---: | " + " | ".join("---:" for _ in families) + " |",
    ]
    for row in table:
        ref = row["reference"]
        cells = [f"{ref['qps']:,.0f} q/s ({ref['label']})" if ref else "not reached"]
        for family in families[1:]:
            best = row["families"][family]
            cells.append("not reached" if not best else
                         (f"**{best['ratio']:.2f}x** ({best['label']})" if best["ratio"] is not None else best["label"]))
        lines.append(f"| {row['level']:.2f} | " + " | ".join(cells) + " |")
    lines += ["", "Fronts (recall, queries/s) of each family:", ""]
    for family, front in fronts.items():
        lines.append(f"- {family}: " + "; ".join(f"{p['recall']:.3f} @ {p['qps']:,.0f} ({p['label']})"
                                                  for p in sorted(front, key=lambda p: p["recall"])))
    lines += ["", f"![recall vs queries/s]({args.name}.png)", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
