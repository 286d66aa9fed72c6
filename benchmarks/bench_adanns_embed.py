#!/usr/bin/env python
"""Embedding throughput: ``hf_ada.adanns.embed`` (datasets map, length-sorted batches, Arrow cache) vs a plain
``SentenceTransformer.encode`` of the same texts, same model (packaged all-MiniLM-L6-v2), same batch size, same
machine, in one run. Prints docs/s; writes ``benchmarks/results/adanns_embed.md`` / ``.json``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--num-docs", type=int, default=1000, help="Debian descriptions embedded")
    parser.add_argument("--batch-size", type=int, default=64, help="texts per forward pass")
    parser.add_argument("--max-seq-length", type=int, default=128, help="token limit per text")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--processes", help="comma-separated process counts: time the sharded embed() under torchrun")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # a torchrun rank: write its timing here
    args = parser.parse_args(argv)
    if args.processes:
        return processes(args, [int(p) for p in args.processes.split(",")])
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import datasets
    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _adanns_corpus import load_corpus

    from hf_ada.adanns import embed
    from hf_ada.adanns.embed import load_default_model

    texts = load_corpus(args.num_docs).documents
    model = load_default_model(device="cpu")
    model.max_seq_length = args.max_seq_length
    model.encode(texts[:64], batch_size=args.batch_size)  # warm-up
    if args.worker:
        import tempfile

        import torch.distributed as dist

        dist.init_process_group("gloo")
        dist.barrier()
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(dir=args.worker.parent) if dist.get_rank() == 0 else _null() as shards:
            shards_list = [shards]
            dist.broadcast_object_list(shards_list, src=0)
            ds = embed(datasets.Dataset.from_dict({"text": texts}), model, batch_size=args.batch_size,
                       show_progress=False, shards_dir=shards_list[0])
            seconds = time.perf_counter() - start
            dist.barrier()
        if dist.get_rank() == 0:
            args.worker.write_text(json.dumps({"world_size": dist.get_world_size(), "docs": len(ds), "seconds": seconds}))
        dist.destroy_process_group()
        return {}
    rows = []
    for name in ("SentenceTransformer.encode", "hf_ada embed()"):
        start = time.perf_counter()
        if name.startswith("Sentence"):
            out = model.encode(texts, batch_size=args.batch_size, convert_to_numpy=True, show_progress_bar=False)
        else:
            ds = embed(datasets.Dataset.from_dict({"text": texts}), model, batch_size=args.batch_size,
                       show_progress=False)
            out = np.asarray(ds.with_format("numpy")["embeddings"])
        seconds = time.perf_counter() - start
        rows.append({"method": name, "docs": len(texts), "seconds": seconds, "docs_per_s": len(texts) / seconds})
        print(f"{name}: {len(texts) / seconds:,.1f} docs/s ({seconds:.1f} s)")
    ratio = rows[1]["docs_per_s"] / rows[0]["docs_per_s"]
    lines = ["# Embedding throughput (CPU, packaged all-MiniLM-L6-v2)", "",
             f"Command: `python benchmarks/bench_adanns_embed.py {' '.join(sys.argv[1:])}`; {len(texts)} Debian "
             f"descriptions, batch {args.batch_size}, max_seq_length {args.max_seq_length}, {os.cpu_count()} shared cores.",
             "", "| method | docs/s | seconds |", "| --- | ---: | ---: |",
             *[f"| {r['method']} | {r['docs_per_s']:,.1f} | {r['seconds']:.1f} |" for r in rows], "",
             f"embed() / plain encode: {ratio:.2f}x.", ""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "adanns_embed.md").write_text("\n".join(lines), encoding="utf-8")
    (args.out / "adanns_embed.json").write_text(json.dumps({"rows": rows, "ratio": ratio}, indent=1), encoding="utf-8")
    return {"rows": rows, "ratio": ratio}


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def processes(args, counts: list[int]) -> dict:
    """The sharded embed() under torchrun with each process count, side by side."""
    import subprocess
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for count in counts:
            out = Path(tmp) / f"p{count}.json"
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(count),
                   __file__, "--num-docs", str(args.num_docs), "--batch-size", str(args.batch_size),
                   "--max-seq-length", str(args.max_seq_length), "--worker", str(out)]
            env = dict(os.environ, OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // count)))
            subprocess.run(cmd, check=True, env=env)
            row = json.loads(out.read_text())
            row["docs_per_s"] = row["docs"] / row["seconds"]
            rows.append(row)
            print(f"{count} process(es): {row['docs_per_s']:,.1f} docs/s ({row['seconds']:.1f} s)")
    base = rows[0]["docs_per_s"]
    lines = ["# Sharded embedding: embed() under torchrun, 1 vs N processes (CPU, packaged all-MiniLM-L6-v2)", "",
             f"Command: `python benchmarks/bench_adanns_embed.py {' '.join(sys.argv[1:])}`; {args.num_docs} Debian "
             f"descriptions, batch {args.batch_size}, max_seq_length {args.max_seq_length}; {os.cpu_count()} cores "
             f"shared with other jobs (load average {os.getloadavg()[0]:.1f} at the end); OMP threads per process = "
             "cores / processes. Each process is one rank of the launch; on one machine the ranks share the same "
             "cores, so ~1x is the expected result here: the speed-up comes with one rank per GPU or per machine.",
             "", "| processes | docs/s | seconds | vs 1 process |", "| ---: | ---: | ---: | ---: |",
             *[f"| {r['world_size']} | {r['docs_per_s']:,.1f} | {r['seconds']:.1f} | {r['docs_per_s'] / base:.2f}x |"
               for r in rows], ""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "adanns_embed_processes.md").write_text("\n".join(lines), encoding="utf-8")
    (args.out / "adanns_embed_processes.json").write_text(json.dumps({"rows": rows}, indent=1), encoding="utf-8")
    return {"rows": rows}


if __name__ == "__main__":
    main()
