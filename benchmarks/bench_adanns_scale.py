"""An AdANNS index larger than RAM: built from a memory-mapped column with bounded memory, saved, served from
disk (``mmap=True``), side by side with faiss IVF-PQ + IndexRefine built and served the same way.

Vectors: a documented synthetic generator (no corpus here has millions of real embeddings): ``--rows`` x 384
float32 rows drawn around 4,096 random centres, with Matryoshka-like decaying variance (dimension ``j`` has
standard deviation ``(1 + j) ** -0.5``, so the leading dimensions carry most of the signal, as in a Matryoshka
embedding). Recall here is recall@10 against exact search over the same vectors (ANN fidelity), not retrieval
quality: quality figures come from real data (``bench_adanns.py``, the 61k Debian corpus).

Every stage runs in its own process, so each peak RSS is that stage's (sampled every 0.1 s from
``/proc/self/status``: anonymous memory and mapped file pages separately; mapped file pages are page cache the
kernel can drop):

1. ``generate``: the vectors (``np.lib.format.open_memmap``), queries and exact top-10 (streamed);
2. ``build-adanns``: :func:`hf_ada.adanns.sharding.build_index_on_disk` from the memory-mapped ``.npy``, then
   ``save_pretrained``;
3. ``build-faiss``: ``IndexIVFPQ`` trained on the same sample and filled batch by batch from the same mapping;
   its re-rank store is the same flat file (``IndexRefine`` over the memory-mapped ``IndexFlat``);
4. ``serve-adanns`` / ``serve-faiss``: load (AdANNS: ``from_pretrained(mmap=True)``; faiss: ``read_index``
   + the mapped flat file), then q/s and recall@10 of each plan, and the RSS while serving.

Usage: ``python benchmarks/bench_adanns_scale.py --rows 10000000`` (disk: ~3x the vectors' bytes).
``--stages generate,build-adanns,serve-adanns`` runs only those stages (in the order above; the others keep
their earlier result from the workdir, if any); the markdown and JSON results are rewritten after every stage,
so a run stopped part-way leaves the stages it finished, and a table names the stages not run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_name, load_average  # noqa: E402

DIM, CENTRES, K = 384, 4096, 10
RESULTS = Path(__file__).resolve().parent / "results"


# ------------------------------------------------------------------ memory
class PeakRss:
    """Peak anonymous and mapped-file resident memory of this process, sampled in a thread."""

    def __init__(self, every: float = 0.1):
        self.every, self.peak = every, {"anon": 0, "file": 0, "total": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def now() -> dict[str, int]:
        fields = {}
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile", "RssShmem", "VmRSS"):
                fields[key] = int(value.split()[0]) * 1024
        return {"anon": fields["RssAnon"], "file": fields["RssFile"] + fields.get("RssShmem", 0),
                "total": fields["VmRSS"]}

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            time.sleep(self.every)

    def sample(self) -> None:
        now = self.now()
        for key in self.peak:
            self.peak[key] = max(self.peak[key], now[key])

    def __enter__(self) -> PeakRss:
        self.start = self.now()  # the process before the stage's work (interpreter, imported libraries)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


# ------------------------------------------------------------------ stages
def _scales() -> np.ndarray:
    return ((1.0 + np.arange(DIM)) ** -0.5).astype(np.float32)


def _draw(rng: np.random.Generator, centres: np.ndarray, n: int) -> np.ndarray:
    ids = rng.integers(0, len(centres), n)
    return (centres[ids] + 0.6 * rng.standard_normal((n, DIM), dtype=np.float32) * _scales()).astype(np.float32)


def generate(args) -> dict:
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((CENTRES, DIM), dtype=np.float32) * _scales()
    path = work / "vectors.npy"
    t0 = time.perf_counter()
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(args.rows, DIM))
    step = 262_144
    for start in range(0, args.rows, step):
        end = min(args.rows, start + step)
        out[start:end] = _draw(np.random.default_rng(1 + start // step), centres, end - start)
    out.flush()
    del out
    queries = _draw(np.random.default_rng(10**9), centres, args.queries)
    np.save(work / "queries.npy", queries)
    t1 = time.perf_counter()
    truth = exact_top_k(np.load(path, mmap_mode="r"), queries, K)
    np.save(work / "truth.npy", truth)
    return {"generate_s": t1 - t0, "truth_s": time.perf_counter() - t1}


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def exact_top_k(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact inner-product top-k on normalised vectors, streamed from the mapping (the ground truth)."""
    import faiss

    q = _normalise(queries).astype(np.float32)
    best_s = np.full((len(q), k), -np.inf, dtype=np.float32)
    best_i = np.full((len(q), k), -1, dtype=np.int64)
    step = 262_144
    for start in range(0, len(vectors), step):
        flat = faiss.IndexFlatIP(DIM)
        flat.add(_normalise(np.asarray(vectors[start : start + step], dtype=np.float32)))
        s, i = flat.search(q, k)
        s_all, i_all = np.concatenate([best_s, s], 1), np.concatenate([best_i, i + start], 1)
        order = np.argsort(-s_all, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(s_all, order, 1), np.take_along_axis(i_all, order, 1)
    return best_i


def _config(args, n: int):
    from hf_ada.adanns import AdANNSConfig

    return AdANNSConfig(dim=DIM, num_rows=n, d_cluster=args.d_cluster, d_search=args.d_cluster, nlist=args.nlist,
                        nprobe=16, pq_bytes=args.pq_bytes, d_pq=args.d_pq, scan="pq", d_rerank=DIM, rerank_k=100,
                        train_size=args.train_size, opq_iterations=args.opq_iterations, metric="ip")


def build_adanns(args) -> dict:
    from hf_ada.adanns.sharding import build_index_on_disk
    from hf_ada.adanns.vectors import ArrayVectorSource

    work = Path(args.workdir)
    source = ArrayVectorSource(np.load(work / "vectors.npy", mmap_mode="r"))
    with PeakRss() as rss:
        t0 = time.perf_counter()
        index = build_index_on_disk(source, _config(args, source.num_rows), work / "build-vectors.faiss",
                                    batch_size=args.batch_size, show_progress=False)
        t1 = time.perf_counter()
        saved = index.save_pretrained(work / "adanns-index")
        t2 = time.perf_counter()
    mem = index.memory()
    (work / "build-vectors.faiss").unlink()  # the saved folder holds its own copy
    return {"build_s": t1 - t0, "save_s": t2 - t1, "peak": rss.peak, "start": rss.start, "codes_bytes": mem["codes"],
            "lists_bytes": mem["lists"], "sample_bytes": min(args.train_size, source.num_rows) * DIM * 4,
            "saved": str(saved)}


def build_faiss(args) -> dict:
    import faiss

    work = Path(args.workdir)
    vectors = np.load(work / "vectors.npy", mmap_mode="r")
    n = len(vectors)
    with PeakRss() as rss:
        t0 = time.perf_counter()
        rows = np.sort(np.random.default_rng(0).choice(n, size=min(args.train_size, n), replace=False))
        sample = _normalise(np.asarray(vectors[rows], dtype=np.float32))
        quantizer = faiss.IndexFlatIP(DIM)
        ivfpq = faiss.IndexIVFPQ(quantizer, DIM, args.nlist, args.pq_bytes, 8, faiss.METRIC_INNER_PRODUCT)
        ivfpq.train(sample)
        del sample
        for start in range(0, n, args.batch_size):
            ivfpq.add(_normalise(np.asarray(vectors[start : start + args.batch_size], dtype=np.float32)))
        faiss.write_index(ivfpq, str(work / "faiss-ivfpq.index"))
        t1 = time.perf_counter()
    return {"build_s": t1 - t0, "peak": rss.peak, "start": rss.start, "index_bytes": (work / "faiss-ivfpq.index").stat().st_size}


def _recall(rows: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(r[:K].tolist()) & set(t.tolist())) / K for r, t in zip(rows, truth)]))


def _time(fn, repeats: int = 2) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def serve_adanns(args) -> dict:
    import faiss

    from hf_ada.adanns import AdANNSIndex

    faiss.omp_set_num_threads(args.threads)
    work = Path(args.workdir)
    queries, truth = np.load(work / "queries.npy"), np.load(work / "truth.npy")
    with PeakRss() as rss:
        t0 = time.perf_counter()
        index = AdANNSIndex.from_pretrained(work / "adanns-index", mmap=True)
        load_s = time.perf_counter() - t0
        after_load = PeakRss.now()
        rows = []
        for plan in json.loads(args.adanns_plans):
            index.search_batch(queries[:8], K, **plan)  # builds the plan's structures
            seconds, (_, ids) = _time(lambda: index.search_batch(queries, K, **plan))
            rows.append({"plan": plan, "qps": len(queries) / seconds, "recall": _recall(ids, truth),
                         "rss": PeakRss.now(), "plan_bytes_per_vector": index.plan_memory(**plan)})
    return {"load_s": load_s, "after_load": after_load, "peak": rss.peak, "start": rss.start, "plans": rows}


def serve_faiss(args) -> dict:
    import faiss

    faiss.omp_set_num_threads(args.threads)
    work = Path(args.workdir)
    queries, truth = _normalise(np.load(work / "queries.npy")).astype(np.float32), np.load(work / "truth.npy")
    with PeakRss() as rss:
        t0 = time.perf_counter()
        ivfpq = faiss.read_index(str(work / "faiss-ivfpq.index"))
        flat = faiss.read_index(str(work / "adanns-index" / "vectors.faiss"), faiss.IO_FLAG_MMAP_IFC)
        refine = faiss.IndexRefine(ivfpq, flat)
        load_s = time.perf_counter() - t0
        after_load = PeakRss.now()
        rows = []
        for nprobe, k_factor in json.loads(args.faiss_plans):
            params = faiss.IndexRefineSearchParameters(k_factor=k_factor, base_index_params=faiss.SearchParametersIVF(nprobe=nprobe))
            refine.search(queries[:8], K, params=params)
            seconds, (_, ids) = _time(lambda: refine.search(queries, K, params=params))
            rows.append({"plan": {"nprobe": nprobe, "k_factor": k_factor}, "qps": len(queries) / seconds,
                         "recall": _recall(ids, truth), "rss": PeakRss.now()})
    return {"load_s": load_s, "after_load": after_load, "peak": rss.peak, "start": rss.start, "plans": rows}


def baseline(args) -> dict:
    """RSS of a process that imported what build-adanns imports, before any work (for runs that predate the
    per-stage ``start`` figure)."""
    import faiss  # noqa: F401

    from hf_ada.adanns import index, sharding, vectors  # noqa: F401

    return {"start": PeakRss.now()}


#: Run in this order: AdANNS's own figures (build, then serving) come before the faiss baseline's, so a run
#: stopped part-way has the method's side complete.
STAGES = {"generate": generate, "build-adanns": build_adanns, "serve-adanns": serve_adanns,
          "build-faiss": build_faiss, "serve-faiss": serve_faiss, "baseline": baseline}


# ------------------------------------------------------------------ report
def _gb(b: float) -> str:
    return f"{b / 2**30:.2f} GiB"


def report(args, results: dict) -> str:
    n = args.rows
    vec_bytes = n * DIM * 4
    missing = [stage for stage in STAGES if stage != "baseline" and stage not in results]
    lines = [
        f"# AdANNS beyond RAM: {n:,} x {DIM} (synthetic, Matryoshka-like decaying variance)", "",
        f"CPU: {cpu_name()}, {os.cpu_count()} cores shared with other jobs (load average at the end "
        f"{load_average()}); faiss threads when serving: {args.threads}; {args.queries} queries; recall@{K} "
        "against exact search on the same vectors (ANN fidelity, not retrieval quality); faiss threads of the "
        f"builds: {args.build_threads}.", "",
        f"Command: `python benchmarks/bench_adanns_scale.py {' '.join(sys.argv[1:])}`", "",
        f"Vectors: {_gb(vec_bytes)} float32. Settings: nlist {args.nlist}, PQ {args.pq_bytes} B/vector, AdANNS "
        f"coarse quantizer on the {args.d_cluster}-dim prefix, OPQ+PQ on the {args.d_pq}-dim prefix; faiss IVF{args.nlist},PQ"
        f"{args.pq_bytes} (residual) on {DIM} dims; both re-rank on the same memory-mapped flat file; "
        f"training sample {min(args.train_size, n):,} rows; OPQ training iterations {args.opq_iterations}.", "",
    ]
    timed = [stage for stage in STAGES if "stage_s" in results.get(stage, {})]
    if timed:
        lines += ["Stages (wall seconds, each in its own process, and the load average when it ended): "
                  + "; ".join(f"{stage} {results[stage]['stage_s']:.0f} s (load {results[stage]['load_at_end']})"
                              for stage in timed) + ".", ""]
    if missing:
        lines += [f"**Not run** (stopped before them, or not asked for with `--stages`): {', '.join(missing)}.", ""]
    if "generate" in results and "generate_s" in results["generate"]:
        g = results["generate"]
        lines += [f"Generation: {g['generate_s']:.0f} s for the vectors, {g['truth_s']:.0f} s for the exact top-{K} "
                  "of the queries (streamed from the mapping).", ""]
    lines += _build_table(args, results, vec_bytes) + _serve_table(args, results, vec_bytes)
    return "\n".join(lines)


def _build_table(args, results: dict, vec_bytes: int) -> list[str]:
    ba, bf = results.get("build-adanns"), results.get("build-faiss")
    if ba is None and bf is None:
        return []
    lines = [
        "## Build (from the memory-mapped .npy)", "",
        "Peak RSS is split into anonymous memory (what the build allocates) and mapped file pages (page cache "
        "mapped into the process: the source column and the vector file being read; the kernel can drop them). "
        "`above start`: the anonymous peak minus the process's own at the start (interpreter and libraries).", "",
        "| | build s | save s | peak RSS anon | anon above start | peak RSS mapped file | stores in RAM (codes + lists) | target: 1.5 x (stores + sample) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    if ba is not None:
        stores = ba["codes_bytes"] + ba["lists_bytes"]
        above = ba["peak"]["anon"] - _start(results, "build-adanns")["anon"]
        target = 1.5 * (stores + ba["sample_bytes"])
        lines.append(f"| AdANNS `build_index_on_disk` | {ba['build_s']:.1f} | {ba['save_s']:.1f} | {_gb(ba['peak']['anon'])} | "
                     f"{_gb(above)} | {_gb(ba['peak']['file'])} | {_gb(stores)} | {_gb(target)} |")
    if bf is not None:
        lines.append(f"| faiss IVF-PQ (add by batches) | {bf['build_s']:.1f} | (in build) | {_gb(bf['peak']['anon'])} | "
                     f"{_gb(bf['peak']['anon'] - _start(results, 'build-faiss')['anon'])} | "
                     f"{_gb(bf['peak']['file'])} | {_gb(bf['index_bytes'])} (index file) | |")
    lines.append("")
    if ba is not None:
        lines.append(f"AdANNS anonymous memory above start / (stores + full-row training sample): "
                     f"{above / (stores + ba['sample_bytes']):.2f}x (target 1.5x; the sample counted at full "
                     f"{DIM} dims, {_gb(ba['sample_bytes'])}, though the build keeps only its {max(args.d_cluster, args.d_pq)} "
                     "leading columns).")
    if ba is not None and bf is not None:
        lines.append(f"Build time ratio AdANNS / faiss: {ba['build_s'] / bf['build_s']:.2f}x, with AdANNS's save "
                     f"{(ba['build_s'] + ba['save_s']) / bf['build_s']:.2f}x (the save copies the vectors into the "
                     "index folder; faiss reuses the AdANNS file for its re-rank; AdANNS also trains an OPQ rotation; "
                     "the stages ran one after the other, at the loads above).")
    lines += [f"Streamed batch: {args.batch_size:,} rows ({_gb(args.batch_size * DIM * 4)} per float32 copy).", ""]
    return lines


def _serve_table(args, results: dict, vec_bytes: int) -> list[str]:
    engines = [(name, key) for name, key in (("AdANNS", "serve-adanns"), ("faiss IVF-PQ + IndexRefine", "serve-faiss"))
               if key in results]
    if not engines:
        return []
    lines = [
        "## Serving from disk", "",
        "| engine | plan | q/s | recall@10 | RSS anon | anon above start | RSS mapped file | RSS total / vectors' bytes | anon / vectors' bytes |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, key in engines:
        for row in results[key]["plans"]:
            plan = ", ".join(f"{k}={v}" for k, v in row["plan"].items())
            start = results[key]["start"]["anon"]
            lines.append(f"| {name} | {plan} | {row['qps']:.1f} | {row['recall']:.3f} | {_gb(row['rss']['anon'])} | "
                         f"{_gb(row['rss']['anon'] - start)} | {_gb(row['rss']['file'])} | "
                         f"{row['rss']['total'] / vec_bytes:.1%} | {row['rss']['anon'] / vec_bytes:.1%} |")
    lines += _equal_recall(results)
    loads = []
    if "serve-adanns" in results:
        sa = results["serve-adanns"]
        loads.append(f"AdANNS {sa['load_s']:.1f} s (it checks every mapped vector for NaN/inf and releases the "
                     f"checked pages; RSS after load {_gb(sa['after_load']['total'])})")
    if "serve-faiss" in results:
        sf = results["serve-faiss"]
        loads.append(f"faiss {sf['load_s']:.1f} s (no check; RSS after load {_gb(sf['after_load']['total'])})")
    lines += ["", f"Load: {', '.join(loads)}.", "",
              "RSS while serving: the anonymous part is what the index holds (lists, codes, faiss's IVF-PQ copy of "
              "them, the interpreter and libraries). The mapped-file part is the vector file's pages mapped in by "
              "the re-rank's page faults: each fault on a memory-mapped file also maps the neighbouring pages "
              "already in the page cache (the kernel's fault-around, 64 KiB), so a few thousand random re-ranked "
              "rows map much of a file that fits in the page cache; the pages are clean and the kernel drops them "
              "under memory pressure. faiss's IndexRefine over the same mapped file shows the same.", ""]
    return lines


def _equal_recall(results: dict) -> list[str]:
    """At equal recall: for each faiss plan, the fastest AdANNS plan reaching at least its recall, and the
    speed ratio (or that none reaches it)."""
    if "serve-adanns" not in results or "serve-faiss" not in results:
        return []
    ours = results["serve-adanns"]["plans"]
    lines = ["", "At equal recall (each faiss plan against the fastest AdANNS plan with at least its recall@10):", ""]
    for row in results["serve-faiss"]["plans"]:
        plan = ", ".join(f"{k}={v}" for k, v in row["plan"].items())
        better = [r for r in ours if r["recall"] >= row["recall"]]
        if better:
            best = max(better, key=lambda r: r["qps"])
            lines.append(f"- faiss {plan}: recall {row['recall']:.3f} at {row['qps']:.1f} q/s; AdANNS nprobe="
                         f"{best['plan'].get('nprobe')}, rerank_k={best['plan'].get('rerank_k')}: {best['recall']:.3f} "
                         f"at {best['qps']:.1f} q/s ({best['qps'] / row['qps']:.2f}x faiss's q/s)")
        else:
            lines.append(f"- faiss {plan}: recall {row['recall']:.3f} at {row['qps']:.1f} q/s; no AdANNS plan run "
                         "reaches it")
    return lines


def _start(results: dict, stage: str) -> dict:
    """The stage's RSS before its work (measured in the stage, else by the ``baseline`` stage)."""
    return results[stage].get("start") or results["baseline"]["start"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--nlist", type=int, default=1024)
    parser.add_argument("--d-cluster", type=int, default=64)
    parser.add_argument("--pq-bytes", type=int, default=16)
    parser.add_argument("--d-pq", type=int, default=64, help="prefix the AdANNS OPQ+PQ codes cover")
    parser.add_argument("--train-size", type=int, default=32_768)
    parser.add_argument("--opq-iterations", type=int, default=50, help="training iterations of AdANNS's OPQ rotation")
    parser.add_argument("--threads", type=int, default=1, help="faiss threads when serving")
    parser.add_argument("--build-threads", type=int, default=1, help="faiss threads of the builds and the ground "
                        "truth (1: OpenMP threads spinning on a loaded 2-core machine cost more than they give)")
    parser.add_argument("--batch-size", type=int, default=65_536, help="rows per streamed batch of the builds")
    parser.add_argument("--adanns-plans", default=json.dumps([
        {"scan": "pq", "nprobe": 16, "d_rerank": DIM, "rerank_k": 100},
        {"scan": "pq", "nprobe": 32, "d_rerank": DIM, "rerank_k": 200},
        {"scan": "pq", "nprobe": 64, "d_rerank": DIM, "rerank_k": 400}]))
    parser.add_argument("--faiss-plans", default=json.dumps([[16, 10], [32, 20], [64, 40], [64, 200], [128, 400]]))
    parser.add_argument("--workdir", default=str(Path(__file__).resolve().parent / ".cache" / "scale"))
    parser.add_argument("--name", default="adanns_scale")
    parser.add_argument("--stage", choices=sorted(STAGES))
    parser.add_argument("--skip", default="", help="comma-separated stages whose earlier result (in the workdir) is reused")
    parser.add_argument("--stages", default=",".join(s for s in STAGES if s != "baseline"),
                        help="comma-separated stages to run now (default: all); the others keep their earlier result")
    args = parser.parse_args()
    chosen = set(filter(None, args.stages.split(",")))
    if chosen - set(STAGES):
        parser.error(f"--stages: unknown {sorted(chosen - set(STAGES))}; choose from {', '.join(STAGES)}")
    if args.stage:
        import faiss

        faiss.omp_set_num_threads(args.build_threads)  # the serve stages set --threads themselves
        print("RESULT " + json.dumps(STAGES[args.stage](args)), flush=True)
        return
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    saved = Path(args.workdir) / f"results-{args.rows}.json"
    results = json.loads(saved.read_text()) if saved.exists() else {}
    skip = set(filter(None, args.skip.split(",")))
    for stage in STAGES:
        if stage not in chosen or (stage in skip and stage in results):
            continue
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--stage", stage], capture_output=True,
                              text=True)
        if proc.returncode:
            sys.exit(f"stage {stage} failed:\n{proc.stderr[-4000:]}")
        results[stage] = json.loads(next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))[7:])
        results[stage].update(stage_s=time.perf_counter() - t0, load_at_end=load_average())
        print(f"{stage}: {time.perf_counter() - t0:.1f} s (load {load_average()})", flush=True)
        saved.write_text(json.dumps(results, indent=1))
        _write_results(args, results)  # after every stage: a run stopped later keeps what it finished
    print(report(args, results))


def _write_results(args, results: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.md").write_text(report(args, results) + "\n")
    (RESULTS / f"{args.name}.json").write_text(json.dumps({"args": vars(args), "results": results}, indent=1))


if __name__ == "__main__":
    main()
