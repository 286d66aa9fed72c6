"""Step time and memory of ``optimizer.step()``: hf-ada's Adan (every path) against the Adans a user would
otherwise pick (timm, pytorch-optimizer, the paper's reference) and against torch's AdamW.

Every (optimizer, model) pair runs in a fresh subprocess so that memory high-water marks and compile caches
do not leak between rows. Inside it:

1. a GPT-2 model is built from a config (~1M / ~25M / ~100M parameters; real transformer tensor-count
   distribution: embeddings, per-layer attention / MLP weights, biases and LayerNorms), and every parameter
   gets a fixed random gradient (no forward/backward is timed);
2. ``--warmup`` steps run (state allocation; ``fused=True`` compiles on the first one): their times are
   kept, the first one is the "first step" of the compile-cost table;
3. ``--steps`` timed steps run; the row's time is their **median**, measured as the CPU time of the calling
   thread (``time.thread_time``: with one torch thread every kernel runs on it, and time spent preempted by
   other processes is not counted, so the number stays meaningful on a shared machine); the wall-clock
   median is shown beside it. With ``--repeats R`` every row runs R times (rounds interleaved over all
   rows, so a burst of load hits one round, not one row) and the table shows the **minimum** of the R
   medians. Ratios use the CPU-time medians.

Memory (Linux): the optimizer's **state** is the exact byte count of the tensors it keeps in
``optimizer.state``; the **transient** peak is how far the process's resident set rose above its level
before the timed steps, read from ``VmHWM`` in ``/proc/self/status`` after resetting it with
``/proc/self/clear_refs`` (so the model, the gradients, the state and anything before the timed steps are
excluded: it is the extra memory one steady-state step needs, e.g. temporaries of a foreach path).
The **first-step** peak is the same measure over the warm-up steps, which includes the state allocation
and, for ``fused=True``, the compiler's own memory.

The fused path is compiled against an empty Inductor cache (``TORCHINDUCTOR_CACHE_DIR`` set to a fresh
temporary folder: the cost a user pays in a new environment); one more process then measures the first step
again with that cache warm (the cost of every later run on the same machine).

Usage::

    python benchmarks/bench_adan_step.py                       # all sizes, 1 thread
    python benchmarks/bench_adan_step.py --sizes 1M 25M --steps 30 --repeats 3
    python benchmarks/bench_adan_step.py --reference-adan /path/to/sail-sg/Adan/adan.py

Writes ``benchmarks/results/adan_step.md``, ``adan_step.png`` and ``adan_step.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
sys.path.insert(0, str(BENCH_DIR))

from _machine import cpu_name, load_average  # noqa: E402

from _gpt2_params import MODEL_SIZES, build_params  # noqa: E402

#: Bytes each optimizer must move per fp32 parameter element at best (reads + writes): AdamW reads param,
#: grad and two moments and writes three; Adan reads param, grad, three moments and the previous gradient
#: and writes five.
FLOOR_BYTES_PER_ELEMENT = {"adan": 11 * 4, "adamw": 7 * 4}

LR = 1e-3
WEIGHT_DECAY = 0.02
ADAN_BETAS = (0.98, 0.92, 0.99)

# id -> (label, family). Order = table order.
OPTIMIZERS: dict[str, tuple[str, str]] = {
    "hf_single": ("hf-ada Adan, single-tensor (foreach=False)", "hf-ada"),
    "hf_foreach": ("hf-ada Adan, multi-tensor (foreach=True)", "hf-ada"),
    "hf_fused": ("hf-ada Adan, fused: native CPU kernel (fused=True)", "hf-ada"),
    "hf_fused_nocheck": ("hf-ada Adan, native kernel, no non-finite check (nonfinite_grads='off')", "hf-ada"),
    "hf_compiled": ("hf-ada Adan, fused via torch.compile (fused=True, HF_ADA_NATIVE_KERNEL=0)", "hf-ada"),
    "hf_auto": ("hf-ada Adan, default (fused=None: measured choice)", "hf-ada"),
    "timm": ("timm Adan (default on CPU: single-tensor)", "timm"),
    "timm_foreach": ("timm Adan (foreach=True)", "timm"),
    "pytorch_optimizer": ("pytorch-optimizer Adan (default: foreach)", "pytorch-optimizer"),
    "reference": ("sail-sg/Adan reference (default: foreach)", "reference"),
    "adamw_foreach": ("torch AdamW (foreach=True)", "torch"),
    "adamw_fused": ("torch AdamW (fused=True)", "torch"),
}
HF_PATHS = ("hf_single", "hf_foreach", "hf_fused", "hf_fused_nocheck", "hf_compiled", "hf_auto")
FUSED_PATHS = ("hf_fused", "hf_fused_nocheck", "hf_compiled", "hf_auto")  # build or compile a kernel
ADAN_IDS = [k for k, (_, fam) in OPTIMIZERS.items() if fam != "torch"]


# ------------------------------------------------------------------------------------------------------
# Worker side (runs in a fresh subprocess)
# ------------------------------------------------------------------------------------------------------


def make_optimizer(opt_id: str, params: list, reference_adan: str | None, timm_cache: str | None):
    import torch

    import hf_ada
    from _adan_baselines import DEFAULT_TIMM_CACHE, load_pytorch_optimizer_adan, load_reference_adan, load_timm_adan

    adan_kw = dict(lr=LR, betas=ADAN_BETAS, eps=1e-8, weight_decay=WEIGHT_DECAY)
    if opt_id == "hf_single":
        return hf_ada.Adan(params, **adan_kw, foreach=False)
    if opt_id == "hf_foreach":
        return hf_ada.Adan(params, **adan_kw, foreach=True)
    if opt_id in ("hf_fused", "hf_compiled"):  # the spawner turns the native kernel off for hf_compiled
        return hf_ada.Adan(params, **adan_kw, fused=True)
    if opt_id == "hf_fused_nocheck":
        return hf_ada.Adan(params, **adan_kw, fused=True, nonfinite_grads="off")
    if opt_id == "hf_auto":
        return hf_ada.Adan(params, **adan_kw)
    if opt_id in ("timm", "timm_foreach"):
        cls = load_timm_adan(Path(timm_cache) if timm_cache else DEFAULT_TIMM_CACHE)
        if cls is None:
            return None
        return cls(params, **adan_kw, foreach=True if opt_id == "timm_foreach" else None)
    if opt_id == "pytorch_optimizer":
        cls = load_pytorch_optimizer_adan()
        # weight_decouple=False is its proximal form (theta /= 1 + lr*wd), the same as the others' default
        return None if cls is None else cls(params, **adan_kw)
    if opt_id == "reference":
        if not reference_adan:
            return None
        return load_reference_adan(reference_adan)(params, **adan_kw)
    if opt_id == "adamw_foreach":
        return torch.optim.AdamW(params, lr=LR, weight_decay=WEIGHT_DECAY, foreach=True)
    if opt_id == "adamw_fused":
        return torch.optim.AdamW(params, lr=LR, weight_decay=WEIGHT_DECAY, fused=True)
    raise ValueError(f"unknown optimizer id {opt_id!r}; allowed: {', '.join(OPTIMIZERS)}")


def _proc_status_kib(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+)\s+kB", text, re.MULTILINE)
    return int(match.group(1)) if match else -1


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def state_bytes(optimizer) -> int:
    import torch

    seen: set[int] = set()
    total = 0
    for state in optimizer.state.values():
        for value in state.values():
            if isinstance(value, torch.Tensor) and value.data_ptr() not in seen:
                seen.add(value.data_ptr())
                total += value.numel() * value.element_size()
    return total


def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(args.threads)
    params = build_params(args.size)
    gen = torch.Generator().manual_seed(1)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen) * 1e-2
    optimizer = make_optimizer(args.worker, params, args.reference_adan, args.timm_cache)
    if optimizer is None:
        return {"skipped": True}
    peak_ok = _reset_peak_rss()
    rss0 = _proc_status_kib("VmRSS")
    warmup_ms = []
    for _ in range(args.warmup):
        t0 = time.perf_counter()
        optimizer.step()
        warmup_ms.append((time.perf_counter() - t0) * 1e3)
    first_peak_kib = _proc_status_kib("VmHWM") - rss0
    _reset_peak_rss()
    rss1 = _proc_status_kib("VmRSS")
    step_ms, step_cpu_ms, step_proc_ms = [], [], []
    for _ in range(args.steps):
        c0, p0, t0 = time.thread_time(), time.process_time(), time.perf_counter()
        optimizer.step()
        step_ms.append((time.perf_counter() - t0) * 1e3)
        step_cpu_ms.append((time.thread_time() - c0) * 1e3)
        step_proc_ms.append((time.process_time() - p0) * 1e3)
    transient_kib = _proc_status_kib("VmHWM") - rss1
    return {
        "skipped": False,
        "n_params": sum(p.numel() for p in params),
        "n_tensors": len(params),
        "warmup_ms": warmup_ms,
        "step_ms": step_ms,
        "median_ms": statistics.median(step_ms) if step_ms else None,
        "min_ms": min(step_ms) if step_ms else None,
        "step_cpu_ms": step_cpu_ms,
        "median_cpu_ms": statistics.median(step_cpu_ms) if step_cpu_ms else None,
        "median_proc_ms": statistics.median(step_proc_ms) if step_proc_ms else None,
        "state_mib": state_bytes(optimizer) / 2**20,
        "chosen_path": optimizer.param_groups[0].get("chosen_path"),
        "transient_mib": transient_kib / 1024 if peak_ok else None,
        "first_step_peak_mib": first_peak_kib / 1024 if peak_ok else None,
    }


def run_copy_bandwidth(args: argparse.Namespace) -> dict[str, Any]:
    """The machine's practical bandwidth for this size: ``dst.copy_(src)`` with ``dst = torch.empty_like(src)``
    (allocated once), ``src`` holding as many fp32 elements as an Adan step moves bytes / 2, so the copy reads
    and writes the same number of bytes as that step at best. Timed like the steps (median, CPU time of
    this thread with 1 thread, wall time otherwise)."""
    import torch

    torch.set_num_threads(args.threads)
    n = sum(p.numel() for p in build_params(args.size))
    src = torch.randn(n * FLOOR_BYTES_PER_ELEMENT["adan"] // 8)
    dst = torch.empty_like(src)

    def median_s(fn) -> float:
        times = []
        for i in range(args.warmup + max(args.steps, 3)):
            c0, p0 = time.thread_time(), time.process_time()
            fn()
            elapsed = (time.thread_time() - c0) if args.threads == 1 else (time.process_time() - p0) / args.threads
            if i >= args.warmup:
                times.append(elapsed)
        return statistics.median(times)

    moved = 2 * src.numel() * 4
    seconds = median_s(lambda: dst.copy_(src))
    # in place (read and write the same lines): what an optimizer's in-place updates can reach, without the
    # read-for-ownership of a copy's destination
    in_place = median_s(lambda: dst.mul_(1.0))
    return {"bytes": moved, "ms": seconds * 1e3, "gb_per_s": moved / seconds / 1e9, "in_place_gb_per_s": moved / in_place / 1e9}


def run_agreement(args: argparse.Namespace) -> dict[str, Any]:
    """Every Adan implementation from the same start with the same gradient sequence: max |param diff| vs
    hf-ada's single-tensor path after ``args.steps`` steps (fresh random gradients each step)."""
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    results: dict[str, Any] = {}
    finals: dict[str, list] = {}
    start = [p.detach().clone() for p in build_params(args.size)]
    for opt_id in ADAN_IDS:
        params = [torch.nn.Parameter(t.clone()) for t in start]
        optimizer = make_optimizer(opt_id, params, args.reference_adan, args.timm_cache)
        if optimizer is None:
            continue
        gen = torch.Generator().manual_seed(2)
        for _ in range(args.steps):
            for p in params:
                p.grad = torch.randn(p.shape, generator=gen) * 1e-2
            optimizer.step()
        finals[opt_id] = [p.detach() for p in params]
    base = finals["hf_single"]
    moved = max((b - s).abs().max().item() for b, s in zip(base, start))
    for opt_id, final in finals.items():
        diff = max((a - b).abs().max().item() for a, b in zip(final, base))
        results[opt_id] = {"max_abs_diff_vs_hf_single": diff}
    return {"steps": args.steps, "max_abs_param_change": moved, "diffs": results}


# ------------------------------------------------------------------------------------------------------
# Driver side
# ------------------------------------------------------------------------------------------------------


def _spawn(extra: list[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {extra} failed (rc={proc.returncode}):\n{proc.stderr[-4000:]}")
    last = [line for line in proc.stdout.splitlines() if line.startswith("{")][-1]
    return json.loads(last)


def _common_flags(args: argparse.Namespace) -> list[str]:
    flags = ["--threads", str(args.threads)]
    if args.reference_adan:
        flags += ["--reference-adan", args.reference_adan]
    if args.timm_cache:
        flags += ["--timm-cache", args.timm_cache]
    return flags


def parse_per_size(spec: str, flag: str, minimum: int = 1) -> dict[str, int]:
    """``"3"`` -> {"*": 3}; ``"3,100M=2"`` -> {"*": 3, "100M": 2} (``flag`` names the option in errors)."""
    out: dict[str, int] = {"*": 1}
    for item in str(spec).split(","):
        key, _, value = item.rpartition("=")
        key = key or "*"
        if key != "*" and key not in MODEL_SIZES:
            raise ValueError(f"{flag}: unknown size {key!r}; allowed: {', '.join(MODEL_SIZES)}")
        try:
            out[key] = int(value)
        except ValueError:
            raise ValueError(f"{flag}: {item!r} is not N or SIZE=N") from None
        if out[key] < minimum:
            raise ValueError(f"{flag}: {item!r} must be >= {minimum}")
    return out


def _fmt(x: float | None, spec: str = ".1f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)




def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=list(MODEL_SIZES), choices=list(MODEL_SIZES))
    parser.add_argument("--optimizers", nargs="+", default=list(OPTIMIZERS), choices=list(OPTIMIZERS))
    parser.add_argument("--steps", default="15,100M=6", help="timed steps per run (median taken), e.g. 20 or '15,100M=6'")
    parser.add_argument("--warmup", type=int, default=3, help="untimed warm-up steps (fused compiles on the 1st)")
    parser.add_argument(
        "--repeats", default="2,100M=1",
        help="interleaved rounds per size, e.g. 3 or '3,100M=2'; the table shows the minimum of the rounds' medians",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads in every worker")
    parser.add_argument("--agreement-steps", type=int, default=5, help="steps of the numerical agreement check")
    parser.add_argument("--reference-adan", default=None, help="path to sail-sg/Adan's adan.py (row skipped if absent)")
    parser.add_argument("--timm-cache", default=None, help="folder holding the unpacked timm wheel")
    parser.add_argument("--out", default=str(RESULTS_DIR), help="results folder")
    parser.add_argument("--name", default="adan_step", help="base name of the results files (default adan_step)")
    parser.add_argument("--from-json", default=None, help="no measuring: re-render the markdown/PNG from a results JSON")
    parser.add_argument("--shared-inductor-cache", action="store_true",
                        help="one Inductor cache for every compiling row (only the first compile is cold) and no "
                             "warm-cache re-run: step times only, no compile-cost table (e.g. for a --threads 2 run)")  # fmt: skip
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--agreement", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--copy", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", default="1M", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        repeats = parse_per_size(args.repeats, "--repeats")
        steps = parse_per_size(args.steps, "--steps", minimum=0)
    except ValueError as err:
        parser.error(str(err))
    for name in ("warmup", "threads", "agreement_steps"):
        if getattr(args, name) < (0 if name == "steps" else 1):
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.reference_adan and not Path(args.reference_adan).is_file():
        parser.error(f"--reference-adan {args.reference_adan!r} is not a file (expected sail-sg/Adan's adan.py)")

    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        markdown = render_markdown(results["summary"], results["agreement"], results["meta"])
        (out / f"{args.name}.md").write_text(markdown)
        plot(results["summary"], out / f"{args.name}.png")
        print(markdown)
        return 0
    if args.worker or args.agreement or args.copy:
        args.steps = int(args.steps)
    if args.copy:
        print(json.dumps(run_copy_bandwidth(args)))
        return 0
    if args.worker:
        print(json.dumps(run_worker(args)))
        return 0
    if args.agreement:
        print(json.dumps(run_agreement(args)))
        return 0

    import torch

    opt_ids = [o for o in args.optimizers if o != "reference" or args.reference_adan]
    load_start = load_average()
    t_start = time.time()
    inductor_dir = tempfile.mkdtemp(prefix="adan_bench_inductor_")
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    compile_rows: dict[str, dict[str, Any]] = {}
    copy_rows: dict[str, dict[str, Any]] = {}
    for size in args.sizes:
        copy_rows[size] = _spawn(["--copy", "--size", size, "--steps", "9", "--warmup", "2"] + _common_flags(args),
                                 dict(os.environ), timeout=3600)  # fmt: skip
        print(f"[{size}] copy bandwidth {copy_rows[size]['gb_per_s']:.1f} GB/s, in place "
              f"{copy_rows[size]['in_place_gb_per_s']:.1f} GB/s "
              f"({copy_rows[size]['bytes'] / 1e6:.0f} MB in {copy_rows[size]['ms']:.2f} ms)", flush=True)  # fmt: skip
        for rnd in range(repeats.get(size, repeats["*"])):
            for opt_id in opt_ids:
                env = dict(os.environ)
                if args.shared_inductor_cache:
                    env["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(inductor_dir, "shared")
                elif opt_id in FUSED_PATHS:  # cold Inductor and native-kernel caches for every compiling run
                    env["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="cold_", dir=inductor_dir)
                if opt_id in FUSED_PATHS:
                    env["HF_ADA_CACHE"] = tempfile.mkdtemp(prefix="cold_native_", dir=inductor_dir)
                if opt_id == "hf_compiled":
                    env["HF_ADA_NATIVE_KERNEL"] = "0"
                n_steps = steps.get(size, steps["*"])
                flags = ["--worker", opt_id, "--size", size, "--steps", str(n_steps), "--warmup", str(args.warmup)]
                res = _spawn(flags + _common_flags(args), env, timeout=3600)
                if res["skipped"]:
                    print(f"[{size}] {opt_id}: skipped", flush=True)
                    continue
                runs.setdefault((size, opt_id), []).append(res)
                print(
                    f"[{size} r{rnd}] {OPTIMIZERS[opt_id][0]:<45} cpu {res['median_cpu_ms']:9.2f} ms  wall {res['median_ms']:9.2f} ms  "
                    f"first {res['warmup_ms'][0]:9.1f} ms  state {res['state_mib']:7.1f} MiB  "
                    f"transient {_fmt(res['transient_mib'])} MiB"
                    + (f"  chose {res['chosen_path']}" if opt_id == "hf_auto" else ""),
                    flush=True,
                )
                if opt_id == "hf_fused" and rnd == 0 and not args.shared_inductor_cache:  # same cache, now warm
                    warm = _spawn(
                        ["--worker", opt_id, "--size", size, "--steps", "0", "--warmup", "2"] + _common_flags(args),
                        env,
                        timeout=3600,
                    )
                    compile_rows[size] = {"warm_first_ms": warm["warmup_ms"][0]}
    agreement = None
    if any(o in opt_ids for o in ADAN_IDS):
        env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=tempfile.mkdtemp(prefix="agree_", dir=inductor_dir))
        agreement = _spawn(
            ["--agreement", "--size", "1M", "--steps", str(args.agreement_steps)] + _common_flags(args), env, 3600
        )
        print("numerical agreement (max |param - hf-ada single| after "
              f"{agreement['steps']} steps; max |param change| {agreement['max_abs_param_change']:.3g}):")  # fmt: skip
        for opt_id, d in agreement["diffs"].items():
            print(f"  {OPTIMIZERS[opt_id][0]:<45} {d['max_abs_diff_vs_hf_single']:.3g}")

    shutil.rmtree(inductor_dir, ignore_errors=True)  # the cold/warm Inductor caches of this run
    summary = summarise(runs, compile_rows, args.sizes, opt_ids, copy_rows, args.threads)
    meta = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "threads": args.threads,
        "steps": args.steps,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "load_avg_start": load_start,
        "load_avg_end": load_average(),
        "wall_s": time.time() - t_start,
        "reference_adan": bool(args.reference_adan),
        "shared_inductor_cache": args.shared_inductor_cache,
        "command": "python benchmarks/bench_adan_step.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(
        json.dumps({"meta": meta, "summary": summary, "agreement": agreement,
                    "runs": {f"{s}/{o}": r for (s, o), r in runs.items()}}, indent=1)  # fmt: skip
    )
    markdown = render_markdown(summary, agreement, meta)
    (out / f"{args.name}.md").write_text(markdown)
    plot(summary, out / f"{args.name}.png")
    print(markdown)
    return 0




def summarise(runs, compile_rows, sizes, opt_ids, copy_rows=None, threads=1) -> dict[str, Any]:
    """Per size: every row's best round (CPU time with 1 thread, wall time with more: the CPU time of the
    calling thread misses the other threads' work), ratios, achieved bandwidth, targets, compile cost."""
    summary: dict[str, Any] = {}
    key = "median_cpu_ms" if threads == 1 else "median_proc_ms"
    for size in sizes:
        rows = {}
        copy = (copy_rows or {}).get(size)
        for opt_id in opt_ids:
            rs = runs.get((size, opt_id))
            if not rs:
                continue
            best = min(rs, key=lambda r: r[key])
            ms = best[key] / threads  # all threads' CPU time / threads: the step's time with the cores to itself
            floor = FLOOR_BYTES_PER_ELEMENT["adamw" if opt_id.startswith("adamw") else "adan"] * best["n_params"]
            gb_per_s = floor / (ms / 1e3) / 1e9
            rows[opt_id] = {
                "label": OPTIMIZERS[opt_id][0],
                "ms": ms,
                "floor_bytes": floor,
                "gb_per_s": gb_per_s,
                "of_copy_bandwidth": gb_per_s / copy["gb_per_s"] if copy else None,
                "of_in_place_bandwidth": gb_per_s / copy["in_place_gb_per_s"] if copy and copy.get("in_place_gb_per_s") else None,
                "chosen_path": best.get("chosen_path"),
                "wall_ms": min(r["median_ms"] for r in rs),
                "all_medians_cpu_ms": [r["median_cpu_ms"] for r in rs],
                "all_medians_wall_ms": [r["median_ms"] for r in rs],
                "first_ms": min(r["warmup_ms"][0] for r in rs),
                "min_step_ms": min(r["min_ms"] for r in rs),
                "state_mib": best["state_mib"],
                "transient_mib": max((r["transient_mib"] or 0.0) for r in rs),
                "first_step_peak_mib": max((r["first_step_peak_mib"] or 0.0) for r in rs),
                "n_params": best["n_params"],
                "n_tensors": best["n_tensors"],
            }
        ref_adamw = rows.get("adamw_fused", {}).get("ms")
        ref_timm = rows.get("timm", {}).get("ms")
        for row in rows.values():
            row["vs_adamw_fused"] = row["ms"] / ref_adamw if ref_adamw else None
            row["timm_speedup"] = ref_timm / row["ms"] if ref_timm else None
        hf = {k: rows[k] for k in HF_PATHS if k in rows}
        fastest = min(hf, key=lambda k: hf[k]["ms"]) if hf else None
        comp = None
        if "hf_fused" in rows:
            fused = rows["hf_fused"]
            nonfused = {k: hf[k] for k in hf if k not in FUSED_PATHS}
            best_nf = min(nonfused, key=lambda k: nonfused[k]["ms"]) if nonfused else None
            cost_ms = fused["first_ms"] - fused["wall_ms"]  # wall time: what the user waits for
            warm_cost_ms = compile_rows.get(size, {}).get("warm_first_ms", float("nan")) - fused["wall_ms"]
            saving = nonfused[best_nf]["ms"] - fused["ms"] if best_nf else float("nan")
            comp = {
                "cold_compile_s": cost_ms / 1e3,
                "warm_compile_s": warm_cost_ms / 1e3,
                "best_nonfused": best_nf,
                "saving_ms_per_step": saving,
                "break_even_steps_cold": cost_ms / saving if saving > 0 else None,
                "break_even_steps_warm": warm_cost_ms / saving if saving > 0 else None,
            }
        targets = None
        if fastest:
            f_ms = rows[fastest]["ms"]
            targets = {
                "fastest_hf_path": fastest,
                "vs_adamw_fused": f_ms / ref_adamw if ref_adamw else None,
                "speedup_vs_timm": ref_timm / f_ms if ref_timm else None,
                "speedup_vs_timm_foreach": rows["timm_foreach"]["ms"] / f_ms if "timm_foreach" in rows else None,
                "speedup_vs_pytorch_optimizer": (
                    rows["pytorch_optimizer"]["ms"] / f_ms if "pytorch_optimizer" in rows else None
                ),
            }
        if targets and "hf_fused" in rows and ref_adamw:
            targets["fused_vs_adamw_fused"] = rows["hf_fused"]["ms"] / ref_adamw
        if targets and "hf_auto" in rows and ref_adamw:
            targets["default_vs_adamw_fused"] = rows["hf_auto"]["ms"] / ref_adamw
            targets["default_chosen_path"] = rows["hf_auto"]["chosen_path"]
        summary[size] = {"rows": rows, "compile": comp, "targets": targets, "copy": copy}
    return summary


def _times(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}×"


def _yes(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**missed**")


def render_markdown(summary: dict[str, Any], agreement: dict[str, Any] | None, meta: dict[str, Any]) -> str:
    lines = [
        "# Adan `optimizer.step()` time and memory (CPU)",
        "",
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['cpu']}, {meta['cores']} cores, torch {meta['torch']}, Python {meta['python']}, "
        f"**{meta['threads']} thread(s)** per worker; load average (1/5/15 min) {meta['load_avg_start']} at the "
        f"start, {meta['load_avg_end']} at the end (the machine is shared with other jobs: treat differences "
        f"below ~10% as noise). Wall time {meta['wall_s'] / 60:.1f} min.  ",
        f"Method: GPT-2 models from a config, fixed random gradients, {meta['warmup']} warm-up steps, then the "
        f"median of the timed steps ({meta['steps']}), the minimum of that median over the interleaved rounds "
        f"({meta['repeats']}); CPU ms = CPU time of the (single) torch thread, which excludes time the process "
        "waited for a core while other jobs ran, wall ms = elapsed time; with more threads, step ms = the "
        "process's CPU time over all threads / threads (what the step takes with the cores to itself; it "
        "counts OpenMP's spin-waiting too, so it is an upper bound); ratios use step ms. "
        "Achieved GB/s = the bytes a step must move at best (Adan: 11 fp32 arrays read or written per "
        "parameter, AdamW: 7) / step time; \"of copy\" divides it by the bandwidth of `dst.copy_(src)` "
        "(`dst = torch.empty_like(src)`, allocated once) moving the same bytes with the same threads: the "
        "machine's practical bandwidth. Every row is a "
        "fresh subprocess. State = bytes of the tensors in `optimizer.state`; transient = rise of the resident "
        "set (VmHWM after a `clear_refs` reset) during the timed steps above its level before them; first-step "
        "peak = the same over the warm-up steps (includes state allocation and, for `fused=True`, the compiler). "
        "The transient column is a lower bound: pages the allocator kept from the warm-up steps are reused "
        "without raising the resident set, so a path's temporaries can read 0 in one round and their full size "
        "in another (the max over rounds is shown); first-step peak − state is an upper bound. "
        "Hyperparameters: lr 1e-3, weight decay 0.02 (Adan betas 0.98/0.92/0.99), no gradient clipping.",
        "",
    ]
    if not meta["reference_adan"]:
        lines += ["The sail-sg/Adan reference row is absent: pass `--reference-adan PATH/adan.py` to include it.", ""]
    else:
        lines += [
            "The sail-sg/Adan reference row uses the repository's `adan.py`, loaded with importlib from a clone "
            "outside this repository (`--reference-adan`); its code is not part of hf-ada.",
            "",
        ]
    for size, block in summary.items():
        rows = block["rows"]
        any_row = next(iter(rows.values()))
        copy = block.get("copy")
        kind = "mixed shapes" if MODEL_SIZES.get(size, ()) is None else "GPT-2"
        lines += [
            f"## {size} ({kind}: {any_row['n_params'] / 1e6:.1f}M parameters in {any_row['n_tensors']} tensors)",
            "",
        ]
        if copy:
            lines += [f"Copy bandwidth (`empty_like` copy of {copy['bytes'] / 1e6:.0f} MB, read + written): "
                      f"{copy['gb_per_s']:.1f} GB/s; in place (`dst.mul_(1)`, the same bytes read and written "
                      f"back, no read-for-ownership of a separate destination): "
                      f"{copy.get('in_place_gb_per_s', float('nan')):.1f} GB/s.", ""]  # fmt: skip
        lines += [
            "| optimizer | step ms | wall ms/step | × torch fused AdamW | speed-up vs timm Adan (×) | achieved GB/s "
            "| of copy | of in place | state MiB | transient MiB | first-step peak MiB |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in rows.values():
            label = row["label"] + (f" → {row['chosen_path']}" if row.get("chosen_path") and "fused=None" in row["label"] else "")
            of_copy, of_in_place = row.get("of_copy_bandwidth"), row.get("of_in_place_bandwidth")
            lines.append(
                f"| {label} | {row['ms']:.2f} | {row['wall_ms']:.2f} | {_fmt(row['vs_adamw_fused'], '.2f')} | "
                f"{_fmt(row['timm_speedup'], '.2f')} | {_fmt(row.get('gb_per_s'))} | "
                f"{'n/a' if of_copy is None else f'{of_copy:.0%}'} | "
                f"{'n/a' if of_in_place is None else f'{of_in_place:.0%}'} | {row['state_mib']:.1f} | "
                f"{_fmt(row['transient_mib'])} | {_fmt(row['first_step_peak_mib'])} |"
            )
        lines.append("")
    lines += [
        "## Targets (hf-ada's fastest Adan path)",
        "",
        "Targets: ≤ 1.6× torch fused AdamW step time; ≥ 3× faster than timm's and pytorch-optimizer's Adan. "
        "The memory-traffic floor at equal bandwidth is 11/7 ≈ 1.57× (Adan moves 11 arrays, AdamW 7) without "
        "the non-finite check (torch's fused AdamW has none) and 12/7 ≈ 1.71× with it (one more read of the "
        "gradients; with in-optimizer clipping the clipping norm is that read).",
        "",
        "| model | fastest hf-ada path | × torch fused AdamW (≤ 1.6) | vs timm default (≥ 3×) "
        "| vs timm foreach | vs pytorch-optimizer (≥ 3×) | fused, check on, × AdamW fused "
        "| default (fused=None) × AdamW fused |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for size, block in summary.items():
        t = block["targets"]
        if not t:
            continue
        a, b, c, d = (t["vs_adamw_fused"], t["speedup_vs_timm"], t["speedup_vs_timm_foreach"],
                      t["speedup_vs_pytorch_optimizer"])  # fmt: skip
        lines.append(
            f"| {size} | {OPTIMIZERS[t['fastest_hf_path']][0]} | {_fmt(a, '.2f')} {_yes(None if a is None else a <= 1.6)}"
            f" | {_times(b)} {_yes(None if b is None else b >= 3)} | {_times(c)} "
            f"| {_times(d)} {_yes(None if d is None else d >= 3)} | {_fmt(t.get('fused_vs_adamw_fused'), '.2f')} | "
            f"{_fmt(t.get('default_vs_adamw_fused'), '.2f')} ({t.get('default_chosen_path') or 'n/a'}) |"
        )
    lines += [
        "",
        "## One-time build cost of `fused=True` (the native CPU kernel) and its break-even",
        "",
        "Build cost = first fused step − steady fused step. Cold = empty kernel cache (a new machine); "
        "warm = the cache left by the cold run (every later process on the same machine). Break-even = build "
        "cost / (best non-fused hf-ada step − fused step). Compile costs are wall time and include the first "
        "step's state allocation (which the non-fused paths pay too: see their first-step times in the JSON), so "
        "on a loaded machine they are upper bounds.",
        "",
        "| model | cold compile s | warm compile s | best non-fused path | saving ms/step | break-even steps (cold) "
        "| break-even steps (warm) |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for size, block in summary.items():
        c = block["compile"]
        if not c or meta.get("shared_inductor_cache"):
            continue
        never = "never (fused is not faster)"
        lines.append(
            f"| {size} | {c['cold_compile_s']:.1f} | {_fmt(c['warm_compile_s'], '.1f')} | "
            f"{OPTIMIZERS[c['best_nonfused']][0] if c['best_nonfused'] else 'n/a'} | {c['saving_ms_per_step']:.2f} | "
            f"{_fmt(c['break_even_steps_cold'], '.0f') if c['break_even_steps_cold'] else never} | "
            f"{_fmt(c['break_even_steps_warm'], '.0f') if c['break_even_steps_warm'] else never} |"
        )
    if agreement:
        lines += [
            "",
            f"## Numerical agreement (1M model, {agreement['steps']} steps, fresh random gradients each step)",
            "",
            f"Max |parameter − hf-ada single-tensor parameter| after the last step; for scale, the largest "
            f"parameter change over the run is {agreement['max_abs_param_change']:.3g}.",
            "",
            "| implementation | max abs diff |",
            "|---|---:|",
        ]
        for opt_id, d in agreement["diffs"].items():
            lines.append(f"| {OPTIMIZERS[opt_id][0]} | {d['max_abs_diff_vs_hf_single']:.3g} |")
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"hf-ada": "tab:green", "timm": "tab:orange", "pytorch-optimizer": "tab:purple",
              "reference": "tab:brown", "torch": "tab:blue"}  # fmt: skip
    fig, axes = plt.subplots(1, len(summary), figsize=(6.5 * len(summary), 5), squeeze=False)
    for ax, (size, block) in zip(axes[0], summary.items()):
        rows = block["rows"]
        if not rows:
            continue
        ids = list(rows)
        ms = [rows[i]["ms"] for i in ids]
        ax.barh(range(len(ids)), ms, color=[colors[OPTIMIZERS[i][1]] for i in ids])
        ax.set_yticks(range(len(ids)))
        ax.set_yticklabels([OPTIMIZERS[i][0].replace(" (", "\n(") for i in ids], fontsize=7)
        ax.invert_yaxis()
        for y, i in enumerate(ids):
            r = rows[i]["vs_adamw_fused"]
            ax.text(rows[i]["ms"], y, f" {rows[i]['ms']:.1f} ms" + (f" ({r:.2f}× AdamW fused)" if r else ""),
                    va="center", fontsize=7)  # fmt: skip
        ax.set_xlim(0, max(ms) * 1.6)
        ax.set_xlabel("optimizer.step() ms (median, lower is better)")
        ax.set_title(f"{size} ({next(iter(rows.values()))['n_params'] / 1e6:.1f}M params)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
