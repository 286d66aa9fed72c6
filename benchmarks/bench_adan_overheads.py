"""Two costs a user of hf-ada's Adan pays outside the update arithmetic, measured on the step benchmark's GPT-2
parameter sets:

1. the non-finite-gradient check (``nonfinite_grads="skip"``, the default) against no check (``"off"``), with
   and without in-optimizer clipping (with clipping the check reads the norm that clipping computes anyway);
2. the first ``step()`` of the fused path (``torch.compile``): with an empty Inductor cache (cold) and again
   in a new process with the cache that run left (warm), i.e. what a second training run pays; plus the log
   lines the user sees.

Every measurement runs in a fresh subprocess with one torch thread; step time = CPU time of the thread
(``time.thread_time``), median of ``--steps`` steps after 3 warm-up steps.

Usage::

    python benchmarks/bench_adan_overheads.py                  # 1M + 25M, ~3 min
    python benchmarks/bench_adan_overheads.py --sizes 1M --steps 10

Writes ``benchmarks/results/adan_overheads.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from _machine import cpu_name, load_average  # noqa: E402
from _gpt2_params import MODEL_SIZES, build_params  # noqa: E402


def worker(mode: str, size: str, path: str, policy: str, max_grad_norm: float, steps: int) -> dict[str, Any]:
    import torch

    from hf_ada import Adan

    torch.set_num_threads(1)
    params = build_params(size)
    gen = torch.Generator().manual_seed(0)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen) * 1e-2
    # "single" must also say fused=False: fused=None would pick the compiled kernel at >= 10M parameters
    kwargs = {"single": {"foreach": False, "fused": False}, "foreach": {"foreach": True},
              "fused": {"fused": True}, "auto": {}}[path]  # fmt: skip
    opt = Adan(params, lr=1e-3, weight_decay=0.02, max_grad_norm=max_grad_norm, nonfinite_grads=policy, **kwargs)
    if mode == "first_step":
        t0 = time.perf_counter()
        opt.step()
        return {"first_step_s": time.perf_counter() - t0}
    for _ in range(3):
        opt.step()
    times = []
    for _ in range(steps):
        t0 = time.thread_time()
        opt.step()
        times.append(time.thread_time() - t0)
    return {"ms": statistics.median(times) * 1e3}


def spawn(args: list[str], env: dict[str, str] | None = None) -> tuple[dict[str, Any], str]:
    proc = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=900)  # fmt: skip
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["1M", "25M"], choices=list(MODEL_SIZES))
    parser.add_argument("--paths", nargs="+", default=["single", "fused"], choices=["single", "foreach", "fused"])
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds; the lowest median is kept")
    parser.add_argument("--out", default=str(BENCH_DIR / "results"))
    parser.add_argument("--worker", nargs=6, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        mode, size, path, policy, max_grad_norm, steps = args.worker
        print(json.dumps(worker(mode, size, path, policy, float(max_grad_norm), int(steps))))
        return 0

    t_start, load_start = time.time(), load_average()
    cache = tempfile.mkdtemp(prefix="adan_inductor_")
    env = {"TORCHINDUCTOR_CACHE_DIR": cache}
    check_rows = []
    for size in args.sizes:
        for path in args.paths:
            for max_grad_norm in (0.0, 1.0):
                best: dict[str, float] = {}
                for _ in range(args.repeats):
                    for policy in ("off", "skip"):
                        res, _ = spawn(["steady", size, path, policy, str(max_grad_norm), str(args.steps)], env)
                        best[policy] = min(best.get(policy, float("inf")), res["ms"])
                check_rows.append({"size": size, "path": path, "max_grad_norm": max_grad_norm, "off_ms": best["off"],
                                   "skip_ms": best["skip"]})  # fmt: skip
                print(check_rows[-1], flush=True)
    shutil.rmtree(cache, ignore_errors=True)
    compile_rows = []
    for size in args.sizes:
        cache = tempfile.mkdtemp(prefix="adan_inductor_")
        env = {"TORCHINDUCTOR_CACHE_DIR": cache}
        cold, cold_log = spawn(["first_step", size, "fused", "skip", "0", "1"], env)
        warm, warm_log = spawn(["first_step", size, "fused", "skip", "0", "1"], env)
        eager, _ = spawn(["first_step", size, "single", "skip", "0", "1"], env)
        compile_rows.append({"size": size, "cold_s": cold["first_step_s"], "warm_s": warm["first_step_s"],
                             "eager_first_step_s": eager["first_step_s"],
                             "cold_log": [line for line in cold_log.splitlines() if "Adan:" in line],
                             "warm_log": [line for line in warm_log.splitlines() if "Adan:" in line]})  # fmt: skip
        print(compile_rows[-1], flush=True)
        shutil.rmtree(cache, ignore_errors=True)

    import torch

    meta = {"command": "python benchmarks/bench_adan_overheads.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "cpu": cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__, "load_avg_start": load_start,
            "load_avg_end": load_average(), "wall_s": time.time() - t_start}  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "adan_overheads.json").write_text(json.dumps({"meta": meta, "check": check_rows, "compile": compile_rows},
                                                        indent=1))  # fmt: skip
    lines = [
        "# Adan: cost of the non-finite check and of the fused path's first step (CPU)",
        "",
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['cpu']}, {meta['cores']} cores, 1 torch thread per worker, torch {meta['torch']}; load "
        f"average {meta['load_avg_start']} at the start, {meta['load_avg_end']} at the end (shared machine: "
        f"differences under ~10% are noise); wall time {meta['wall_s'] / 60:.1f} min.",
        "",
        "## Non-finite-gradient check (`nonfinite_grads=\"skip\"` vs `\"off\"`)",
        "",
        "Median CPU ms per `step()` (lowest of the interleaved rounds), GPT-2 parameter sets of "
        "`bench_adan_step.py`, lr 1e-3, wd 0.02.",
        "",
        "| model | path | in-optimizer clipping | off ms | skip ms | check cost |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in check_rows:
        lines.append(f"| {r['size']} | {r['path']} | {'max_grad_norm=1' if r['max_grad_norm'] else 'off'} | "
                     f"{r['off_ms']:.2f} | {r['skip_ms']:.2f} | {(r['skip_ms'] / r['off_ms'] - 1) * 100:+.1f}% |")  # fmt: skip
    lines += [
        "",
        "## First `step()` of the fused path: cold vs warm Inductor cache",
        "",
        "Each a new process; warm = a second process with the cache folder the first one filled "
        "(`TORCHINDUCTOR_CACHE_DIR`, default `/tmp/torchinductor_$USER`, kept across runs).",
        "",
        "| model | cold first step s | warm first step s | single-tensor first step s |",
        "|---|---:|---:|---:|",
    ]
    for r in compile_rows:
        lines.append(f"| {r['size']} | {r['cold_s']:.1f} | {r['warm_s']:.1f} | {r['eager_first_step_s']:.2f} |")
    lines += ["", "What the user sees (log lines of the cold run, then of the warm run):", "", "```"]
    for r in compile_rows:
        lines += [*r["cold_log"], *r["warm_log"]]
    lines += ["```", ""]
    (out / "adan_overheads.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
