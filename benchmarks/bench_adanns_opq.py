#!/usr/bin/env python
"""AdANNS's OPQ+PQ codes (32 bytes per vector) vs faiss OPQ32: exhaustive and IVF, at equal recall.

One corpus (default: the full 61k Debian corpus of ``bench_adanns.py``, same MiniLM + Matryoshka head), one faiss
thread for every search:

* **faiss** ``index_factory(384, "OPQ32,PQ32")`` (exhaustive) and ``"OPQ32,IVF<nlist>,PQ32"`` (nprobe 1-128),
  the compressed indexes a faiss user would build;
* **AdANNS** ``AdANNSConfig(dim=384, pq_bytes=32, d_pq=d)`` for each ``--d-pq`` (384: the codes cover every
  dim, as faiss's; 192: a Matryoshka prefix, 6-dim sub-quantizers), with its default coarse quantizer (on
  the ``d_cluster`` prefix) and the full-dim one (``extra_d_clusters=[384]``), scanned with ``scan="pq"`` at the
  same nprobe values and exhaustively (``nprobe=nlist``).

For each faiss point AdANNS takes the fastest of its settings whose recall on the *tuning* queries reaches
faiss's recall on them (the choice never sees the test queries); both are then measured on the test queries.
recall = NN recall@10 (exact search's top 10). Writes ``benchmarks/results/<name>.{md,png,json}`` (default
``adanns_opq``). Command: ``python benchmarks/bench_adanns_opq.py`` (~8 min on 2 cores; OPQ training dominates).
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

NPROBES = (1, 2, 4, 8, 16, 32, 64, 128)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    corpus_arguments(parser, num_docs=0, name="adanns_opq")
    parser.add_argument("--d-pq", default="384,192", help="comma list of AdANNS d_pq values")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per setting (best kept)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    import faiss

    from _machine import cpu_name, load_average

    from hf_ada.adanns import AdANNSConfig, AdANNSIndex, retrieval_metrics
    from hf_ada.adanns.tuning import best_time
    from hf_ada.adanns.config import default_structure
    from hf_ada.adanns.vectors import prefix
    from hf_ada.demo.plots import plot_fronts

    t0 = time.perf_counter()
    load_start = load_average()
    split = matryoshka_split(args.corpus, args.num_docs)
    docs, sets = split.docs, {"tune": split.tuning, "test": split.test}
    n = len(docs)
    x384 = prefix(docs, 384, "ip")
    flat = faiss.IndexFlatIP(384)
    flat.add(x384)
    truth = {name: nn_truth(flat, q) for name, q in sets.items()}

    def measure(search) -> dict:
        out = {}
        for name, q in sets.items():
            seconds, rows = best_time(lambda q=q: search(q), args.repeats)
            out[name] = {"recall": retrieval_metrics(rows, truth[name], 10)["recall"], "qps": len(q) / seconds}
        return out

    builds: dict[str, float] = {}
    faiss.omp_set_num_threads(2)
    nlist = default_structure(384, n)["nlist"]  # AdANNS's own choice for this size; faiss gets the same
    factories = {"faiss OPQ32,PQ32 (exhaustive)": "OPQ32,PQ32", f"faiss OPQ32,IVF{nlist},PQ32": f"OPQ32,IVF{nlist},PQ32"}
    faiss_indexes = {}
    for label, spec in factories.items():
        start = time.perf_counter()
        index = faiss.index_factory(384, spec, faiss.METRIC_INNER_PRODUCT)
        index.train(x384)
        index.add(x384)
        builds[label] = time.perf_counter() - start
        faiss_indexes[label] = index
        print(f"built {label} ({time.perf_counter() - t0:.0f}s)", flush=True)
    adanns = {}
    for d_pq in (int(d) for d in args.d_pq.split(",")):
        start = time.perf_counter()
        config = AdANNSConfig(dim=384, pq_bytes=32, d_pq=d_pq, nlist=nlist, extra_d_clusters=[384])
        index = AdANNSIndex.build(docs, config, show_progress=False)
        builds[f"AdANNS OPQ 32 B, d_pq={d_pq} (+ the 384-dim quantizer)"] = time.perf_counter() - start
        adanns[d_pq] = index
        print(f"built AdANNS d_pq={d_pq} ({time.perf_counter() - t0:.0f}s)", flush=True)

    faiss.omp_set_num_threads(1)
    baselines = []
    exhaustive, ivf_pq = faiss_indexes.values()
    baselines.append({"label": "faiss OPQ32,PQ32 (exhaustive)",
                      **measure(lambda q: exhaustive.search(prefix(q, 384, "ip"), 10)[1])})
    ivf = faiss.extract_index_ivf(ivf_pq)
    for p in (p for p in NPROBES if p < nlist):
        ivf.nprobe = p
        baselines.append({"label": f"faiss OPQ32,IVF{nlist},PQ32 nprobe={p}",
                          **measure(lambda q: ivf_pq.search(prefix(q, 384, "ip"), 10)[1])})
    points = []
    for d_pq, index in adanns.items():
        for d_cluster in index.config.d_clusters:
            for p in sorted({*(p for p in NPROBES if p < nlist), nlist}):
                settings = {"scan": "pq", "d_cluster": d_cluster, "nprobe": p, "d_rerank": None}
                label = (f"AdANNS OPQ 32 B d_pq={d_pq}, " + ("exhaustive" if p == nlist else
                                                            f"IVF d_cluster={d_cluster} nprobe={p}"))
                if p == nlist and d_cluster != index.config.d_cluster:
                    continue  # every list: the quantizer does not matter
                points.append({"label": label, "d_pq": d_pq,
                               **measure(lambda q, s=settings, index=index: index.search_batch(q, 10, **s)[1])})
        print(f"measured AdANNS d_pq={d_pq} ({time.perf_counter() - t0:.0f}s)", flush=True)

    rows = []
    for b in baselines:
        reach = [p for p in points if p["tune"]["recall"] >= b["tune"]["recall"] - 1e-12]
        chosen = max(reach, key=lambda p: p["tune"]["qps"]) if reach else None
        rows.append({"baseline": b, "adanns": chosen,
                     "ratio": chosen["test"]["qps"] / b["test"]["qps"] if chosen else None})
    same_code = {d: next(p for p in points if p["d_pq"] == d and "exhaustive" in p["label"]) for d in adanns}
    total_s = time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    series = {"faiss OPQ32 (IVF, exhaustive)": [b["test"] for b in baselines]}
    for d_pq in sorted(adanns, reverse=True):
        series[f"AdANNS OPQ 32 B, d_pq={d_pq}"] = [p["test"] for p in points if p["d_pq"] == d_pq]
    plot = plot_fronts(series, args.out / f"{args.name}.png", flops=False,
                       title=f"{args.corpus}: {n} docs, 1 thread, 32 B codes (test queries)")
    lines = [
        f"# AdANNS OPQ 32 B vs faiss OPQ32: {args.corpus} corpus", "",
        f"Command: `python benchmarks/bench_adanns_opq.py {' '.join(sys.argv[1:])}` ({total_s / 60:.1f} min on "
        f"{cpu_name()}, {os.cpu_count()} CPU cores; load average {load_start} at the start, {load_average()} at "
        "the end; builds on 2 faiss threads, every search on 1).", "",
        f"{n} documents; {len(sets['tune'])} tuning and {len(sets['test'])} test queries (those of "
        "`bench_adanns.py`); recall = NN recall@10 (exact search's top 10). AdANNS is given faiss's recall on the "
        "tuning queries and takes the fastest of its settings reaching it there; both are then measured on the test "
        "queries (queries/s: best of "
        f"{args.repeats} runs of the whole batch).", "",
        "Build seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in builds.items()) + ".", "",
        "| faiss index | its recall (test) | its q/s | AdANNS setting chosen on the tuning queries | AdANNS recall (test) "
        "| AdANNS q/s | **ratio** |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for r in rows:
        b, a = r["baseline"], r["adanns"]
        lines.append(f"| {b['label']} | {b['test']['recall']:.3f} | {b['test']['qps']:,.0f} | "
                     + (f"{a['label']} | {a['test']['recall']:.3f} | {a['test']['qps']:,.0f} | **{r['ratio']:.2f}x** |"
                        if a else "not reached | | | |"))
    lines += ["", "Exhaustive scans of the same code size (every vector's 32 bytes, no IVF): "
              + "; ".join(f"AdANNS d_pq={d}: recall {p['test']['recall']:.3f} at {p['test']['qps']:,.0f} q/s"
                          for d, p in same_code.items())
              + f"; faiss OPQ32,PQ32: recall {baselines[0]['test']['recall']:.3f} at {baselines[0]['test']['qps']:,.0f} q/s.",
              "", "Every AdANNS setting (test queries):", "", "| setting | recall | q/s |", "| --- | ---: | ---: |",
              *[f"| {p['label']} | {p['test']['recall']:.3f} | {p['test']['qps']:,.0f} |" for p in points],
              "", f"![recall vs queries/s]({args.name}.png)", ""]
    report = "\n".join(lines)
    (args.out / f"{args.name}.md").write_text(report, encoding="utf-8")
    payload = {"args": {k: str(v) for k, v in vars(args).items()}, "baselines": baselines, "points": points,
               "rows": rows, "builds": builds, "seconds": total_s}
    (args.out / f"{args.name}.json").write_text(json.dumps(payload, indent=1), encoding="utf-8")
    print(report)
    print(f"wrote {args.out / (args.name + '.md')}, {plot}")
    return payload


if __name__ == "__main__":
    main()
