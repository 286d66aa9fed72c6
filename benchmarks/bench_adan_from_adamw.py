"""Switching from AdamW: does ``--optim_args from_adamw=true`` give an Adan run that matches or beats a tuned
AdamW run? The protocol of issue 13, on two tasks and a batch-size sweep, with the transformers ``Trainer``.

Protocol per task (every run: same initial weights per seed, same batches, same schedule shape):

1. AdamW: an lr sweep (``--adamw-lrs``) at seed 0; the best final eval loss picks AdamW's lr, which then runs
   with the other seeds (``--seeds``, default 3);
2. Adan, translated: ``optim="adan", optim_args="from_adamw=true"`` from that tuned AdamW setting (lr, weight
   decay, warm-up, betas go through :func:`hf_ada.optim.adan_from_adamw`), every seed;
3. Adan, own small sweep: the same translation with other ``lr_multiplier`` values (``--adan-multipliers``) at
   seed 0; if one beats the translated default, it runs with the other seeds too.

Reported: final eval loss (mean and spread over seeds), the steps each run needs to reach AdamW's final eval
loss (mean over seeds; "not reached" when a seed never gets there), eval curves (PNG).

Tasks:

* ``lm``: GPT-2 from scratch on Debian package descriptions (the setup of ``bench_adan_convergence.py``: its
  data, tokenizer and model sizes), AdamW recipe wd 0.1, betas (0.9, 0.95), 5% warm-up, cosine, clip 1.0;
* ``cls``: fine-tuning the bundled all-MiniLM-L6-v2 (``hf_ada.demo.pretrained.minilm_path()``) to predict the
  Debian archive section of a package from its description (12 sections, one document per distinct
  description, held-out documents for eval), AdamW recipe wd 0.01, betas (0.9, 0.999), 10% warm-up, linear;
* ``batch``: the paper's large-batch claim: the ``lm`` task at a fixed token budget and batch sizes
  ``--batch-sizes`` (larger batches by gradient accumulation), AdamW and translated Adan, each with the lr
  scaled by sqrt(batch / 16) from the tuned ``lm`` lr (``--batch-lr-scaling``), seed 0.

Usage::

    python benchmarks/bench_adan_from_adamw.py                         # lm + cls, ~20 min on 2 idle cores
    python benchmarks/bench_adan_from_adamw.py --tasks batch           # batch-size sweep, ~10 min
    python benchmarks/bench_adan_from_adamw.py --tasks lm --lm-steps 60 --seeds 1 --adamw-lrs-lm 1e-3  # smoke
    # the GPU-scale run (a 12M GPT-2, 3,000 steps; the cls task on all 30k training documents):
    python benchmarks/bench_adan_from_adamw.py --gpu --tasks lm cls batch --model-size medium --lm-steps 5000 \
        --cls-steps 1500 --batch-steps 5000 --batch-sizes 16,64,256,1024 --max-micro-batch 64 --name adan_from_adamw_gpu

Writes ``benchmarks/results/adan_from_adamw.{md,json}`` and ``adan_from_adamw_<task>.png`` (``--out``,
``--name`` to change).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
sys.path.insert(0, str(BENCH_DIR))

from _machine import cpu_name, load_average  # noqa: E402
from _lm_corpus import (  # noqa: E402
    DEBIAN_PARQUET,
    MODEL_SIZES,
    load_documents,
    pack_blocks,
    steps_to_reach,
    train_tokenizer,
)

CLS_SECTIONS = ("python", "doc", "perl", "devel", "utils", "haskell", "net", "rust", "golang", "javascript",
                "games", "science")  # fmt: skip

RECIPES: dict[str, dict[str, Any]] = {
    "lm": {"weight_decay": 0.1, "betas": (0.9, 0.95), "warmup": 0.05, "schedule": "cosine", "clip": 1.0},
    "cls": {"weight_decay": 0.01, "betas": (0.9, 0.999), "warmup": 0.1, "schedule": "linear", "clip": 1.0},
}


# ------------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------------


def lm_data(args: argparse.Namespace, n_train_blocks: int):
    from datasets import Dataset

    n_embd, n_layer, n_head, vocab_size = MODEL_SIZES[args.model_size]
    train_docs, eval_docs, source = load_documents()
    random.Random(0).shuffle(train_docs)
    tokenizer = train_tokenizer(train_docs[:20000], vocab_size)
    train_blocks = pack_blocks(tokenizer, train_docs, n_train_blocks, args.block_size)
    eval_blocks = pack_blocks(tokenizer, eval_docs, args.eval_blocks, args.block_size)
    train_ds = Dataset.from_dict({"input_ids": train_blocks, "labels": train_blocks})
    eval_ds = Dataset.from_dict({"input_ids": eval_blocks, "labels": eval_blocks})
    return train_ds, eval_ds, len(tokenizer), source


def cls_data(args: argparse.Namespace, n_train: int):
    import pyarrow.parquet as pq
    from datasets import Dataset
    from transformers import AutoTokenizer

    from hf_ada.demo.pretrained import minilm_path

    if not DEBIAN_PARQUET.is_file():
        raise SystemExit(f"the cls task needs {DEBIAN_PARQUET}")
    table = pq.read_table(DEBIAN_PARQUET, columns=["section", "synopsis", "description", "description_md5"])
    label_of = {s: i for i, s in enumerate(CLS_SECTIONS)}
    seen: set[str] = set()
    train, evals = [], []
    for section, synopsis, description, md5 in zip(*(table.column(c).to_pylist() for c in table.column_names)):
        if section not in label_of or md5 in seen:
            continue
        seen.add(md5)
        is_eval = int.from_bytes(hashlib.sha1(md5.encode()).digest()[:4], "big") / 2**32 < 0.05
        (evals if is_eval else train).append((f"{synopsis}. {description}", label_of[section]))
    random.Random(0).shuffle(train)
    random.Random(1).shuffle(evals)
    train, evals = train[:n_train], evals[: args.cls_eval]
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())

    def encode(rows):
        enc = tokenizer([t for t, _ in rows], truncation=True, max_length=args.cls_max_len, padding="max_length")
        return Dataset.from_dict({**enc, "labels": [label for _, label in rows]})

    source = (f"Debian package sections ({len(CLS_SECTIONS)} classes: {', '.join(CLS_SECTIONS)}), synopsis + "
              f"description, {args.cls_max_len} tokens; {len(train)} train / {len(evals)} held-out documents")  # fmt: skip
    return encode(train), encode(evals), source


# ------------------------------------------------------------------------------------------------------
# One run
# ------------------------------------------------------------------------------------------------------


def train_one(task: str, optimizer: str, lr: float, seed: int, *, args, data, steps: int, batch_size: int,
              lr_multiplier: float | None = None, work: Path) -> dict[str, Any]:  # fmt: skip
    import numpy as np
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        GPT2Config,
        GPT2LMHeadModel,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    import hf_ada  # noqa: F401  (registers optim="adan")
    from hf_ada.demo.pretrained import minilm_path

    recipe = RECIPES["cls" if task == "cls" else "lm"]
    train_ds, eval_ds, extra_data = data
    set_seed(seed)
    if task == "cls":
        model = AutoModelForSequenceClassification.from_pretrained(minilm_path(), num_labels=len(CLS_SECTIONS))
    else:
        n_embd, n_layer, n_head, _ = MODEL_SIZES[args.model_size]
        model = GPT2LMHeadModel(GPT2Config(n_embd=n_embd, n_layer=n_layer, n_head=n_head, vocab_size=extra_data,
                                           n_positions=args.block_size, bos_token_id=0, eos_token_id=0))  # fmt: skip
    per_device = min(batch_size, args.max_micro_batch)
    if batch_size % per_device:
        raise ValueError(f"batch size {batch_size} is not a multiple of --max-micro-batch {per_device}")
    kwargs: dict[str, Any] = {}
    if optimizer == "adan":
        kwargs["optim"] = "adan"
        kwargs["optim_args"] = "from_adamw=true" + (f",lr_multiplier={lr_multiplier:g}" if lr_multiplier else "")
    else:
        kwargs["optim"] = "adamw_torch"

    def accuracy(eval_pred):
        logits, labels = eval_pred
        return {"accuracy": float((np.argmax(logits, -1) == labels).mean())}

    eval_every = max(1, steps // args.evals_per_run)
    targs = TrainingArguments(
        output_dir=str(work / f"{task}_{optimizer}_{lr:g}_{lr_multiplier}_{seed}_{batch_size}"),
        learning_rate=lr, weight_decay=recipe["weight_decay"], adam_beta1=recipe["betas"][0],
        adam_beta2=recipe["betas"][1], warmup_steps=recipe["warmup"], lr_scheduler_type=recipe["schedule"],
        max_grad_norm=recipe["clip"], max_steps=steps, per_device_train_batch_size=per_device,
        gradient_accumulation_steps=batch_size // per_device, per_device_eval_batch_size=64,
        eval_strategy="steps", eval_steps=eval_every, eval_on_start=True, logging_steps=eval_every,
        save_strategy="no", report_to="none", disable_tqdm=True, seed=seed, data_seed=seed,
        dataloader_num_workers=0, use_cpu=not args.gpu, **kwargs,
    )  # fmt: skip
    trainer = Trainer(model=model, args=targs, train_dataset=train_ds, eval_dataset=eval_ds,
                      compute_metrics=accuracy if task == "cls" else None)  # fmt: skip
    t0 = time.time()
    trainer.train()
    final = trainer.evaluate() if steps % eval_every else None
    wall = time.time() - t0
    history = trainer.state.log_history
    curve = dict((h["step"], h["eval_loss"]) for h in history if "eval_loss" in h)
    acc = dict((h["step"], h["eval_accuracy"]) for h in history if "eval_accuracy" in h)
    if final is not None:
        curve[steps] = final["eval_loss"]
        if "eval_accuracy" in final:
            acc[steps] = final["eval_accuracy"]
    curve_list = sorted(curve.items())
    inner = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
    return {
        "task": task, "optimizer": optimizer, "lr_given": lr, "lr_used": targs.learning_rate,
        "weight_decay_used": targs.weight_decay, "warmup_used": targs.warmup_steps,
        "lr_multiplier": lr_multiplier, "seed": seed, "batch_size": batch_size, "steps": steps,
        "eval_curve": curve_list, "final_eval_loss": curve_list[-1][1],
        "final_accuracy": sorted(acc.items())[-1][1] if acc else None, "wall_s": wall,
        "optimizer_class": type(inner).__name__, "optim_args": targs.optim_args,
        "n_params": sum(p.numel() for p in model.parameters()), "torch_threads": torch.get_num_threads(),
    }  # fmt: skip


# ------------------------------------------------------------------------------------------------------
# Protocol
# ------------------------------------------------------------------------------------------------------


def _run(runs: list[dict[str, Any]], label: str, **kw) -> dict[str, Any] | None:
    print(f"[{label}] {kw['task']} {kw['optimizer']} lr={kw['lr']:g} mult={kw.get('lr_multiplier')} seed={kw['seed']} "
          f"batch={kw['batch_size']} ...", flush=True)  # fmt: skip
    try:
        res = train_one(**kw)
    except Exception as err:  # a diverging setting must not lose the other runs
        print(f"  failed: {err!r}", flush=True)
        return None
    res["config"] = label
    runs.append(res)
    acc = f", accuracy {res['final_accuracy']:.3f}" if res["final_accuracy"] is not None else ""
    print(f"  final eval loss {res['final_eval_loss']:.4f}{acc} (lr used {res['lr_used']:g}, {res['wall_s']:.0f} s)",
          flush=True)  # fmt: skip
    return res


def protocol(task: str, args, data, work: Path, runs: list[dict[str, Any]]) -> None:
    steps = args.lm_steps if task == "lm" else args.cls_steps
    lrs = args.adamw_lrs_lm if task == "lm" else args.adamw_lrs_cls
    common = dict(task=task, args=args, data=data, steps=steps, batch_size=args.batch_size, work=work)
    sweep = [r for lr in lrs if (r := _run(runs, "adamw sweep", optimizer="adamw", lr=lr, seed=0, **common))]
    if not sweep:
        return
    best = min(sweep, key=lambda r: r["final_eval_loss"])
    best["config"] = "adamw tuned"
    for r in sweep:
        if r is not best:
            r["config"] = "adamw sweep"
    seeds = list(range(args.seeds))
    for seed in seeds[1:]:
        _run(runs, "adamw tuned", optimizer="adamw", lr=best["lr_given"], seed=seed, **common)
    translated = [r for seed in seeds
                  if (r := _run(runs, "adan translated", optimizer="adan", lr=best["lr_given"], seed=seed, **common))]  # fmt: skip
    own = [r for m in args.adan_multipliers
           if (r := _run(runs, "adan sweep", optimizer="adan", lr=best["lr_given"], seed=0, lr_multiplier=m, **common))]  # fmt: skip
    seed0 = [r for r in translated if r["seed"] == 0]
    better = [r for r in own if not seed0 or r["final_eval_loss"] < seed0[0]["final_eval_loss"]]
    if better:
        top = min(better, key=lambda r: r["final_eval_loss"])
        top["config"] = "adan tuned"
        for seed in seeds[1:]:
            _run(runs, "adan tuned", optimizer="adan", lr=best["lr_given"], seed=seed,
                 lr_multiplier=top["lr_multiplier"], **common)  # fmt: skip


def batch_protocol(args, data, work: Path, runs: list[dict[str, Any]]) -> None:
    budget = args.batch_steps * args.batch_size  # sequences
    for batch_size in args.batch_sizes:
        steps = max(1, budget // batch_size)
        lr = args.batch_base_lr * (math.sqrt(batch_size / args.batch_size) if args.batch_lr_scaling == "sqrt" else 1.0)
        for optimizer in ("adamw", "adan"):
            _run(runs, f"batch {batch_size}", task="batch", optimizer=optimizer, lr=lr, seed=0, args=args, data=data,
                 steps=steps, batch_size=batch_size, work=work)  # fmt: skip


# ------------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------------


def _mean_curve(group: list[dict[str, Any]]) -> list[tuple[int, float]]:
    steps = sorted(set.intersection(*(set(s for s, _ in r["eval_curve"]) for r in group)))
    return [(s, statistics.fmean(dict(r["eval_curve"])[s] for r in group)) for s in steps]


def summarise_task(runs: list[dict[str, Any]], task: str) -> list[dict[str, Any]]:
    task_runs = [r for r in runs if r["task"] == task]
    tuned = [r for r in task_runs if r["config"] == "adamw tuned"]
    if not tuned:
        return []
    target = statistics.fmean(r["final_eval_loss"] for r in tuned)
    rows = []
    keys: dict[tuple, list[dict[str, Any]]] = {}
    for r in task_runs:
        keys.setdefault((r["optimizer"], r["lr_used"], r["lr_multiplier"]), []).append(r)
    for (optimizer, lr_used, mult), group in sorted(keys.items(), key=lambda kv: (kv[0][0] != "adamw", kv[0][1])):
        finals = [r["final_eval_loss"] for r in group]
        reach = [steps_to_reach(r["eval_curve"], target) for r in group]
        accs = [r["final_accuracy"] for r in group if r["final_accuracy"] is not None]
        configs = {r["config"] for r in group}
        rows.append({
            "config": " / ".join(sorted(configs)), "optimizer": optimizer, "lr_used": lr_used, "lr_multiplier": mult,
            "lr_given": group[0]["lr_given"],
            "weight_decay": group[0]["weight_decay_used"], "warmup": group[0]["warmup_used"], "seeds": len(group),
            "final_mean": statistics.fmean(finals), "final_sd": statistics.stdev(finals) if len(finals) > 1 else 0.0,
            "accuracy_mean": statistics.fmean(accs) if accs else None,
            "steps_to_target": (statistics.fmean(reach) if all(x is not None for x in reach) else None),
            "reached": sum(x is not None for x in reach), "target": target, "steps": group[0]["steps"],
        })  # fmt: skip
    return rows


def render(results: dict[str, Any], name: str) -> str:
    meta, runs = results["meta"], results["runs"]
    lines = [
        "# Switching from AdamW to Adan with `--optim_args from_adamw=true` (CPU)",
        "",
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['cpu']}, {meta['cores']} cores, {meta['threads']} torch thread(s), torch {meta['torch']}, "
        f"transformers {meta['transformers']}; load average {meta['load_avg_start']} at the start, "
        f"{meta['load_avg_end']} at the end (shared machine); total wall time {meta['wall_s'] / 60:.1f} min.  ",
        "Protocol: AdamW lr sweep at seed 0, its best lr with every seed; Adan with the settings translated from "
        "that tuned AdamW run (`from_adamw=true`, default rule) with every seed; Adan's own small sweep over "
        "`lr_multiplier` at seed 0 (its best re-run with every seed if it beats the default). Steps to target = "
        "steps to reach the tuned AdamW's mean final eval loss (linear interpolation between evaluations), mean "
        "over seeds when every seed reaches it.",
        "",
    ]
    for task, title in (("lm", "GPT-2 from scratch (causal LM)"), ("cls", "Fine-tuning all-MiniLM-L6-v2 (section classification)")):
        rows = results["summary"].get(task)
        if not rows:
            continue
        info = meta["tasks"][task]
        lines += [f"## {title}", "", f"{info}", "",
                  "| run | optimizer | lr used | weight decay | warm-up | seeds | final eval loss (mean ± sd) "
                  + ("| accuracy " if task == "cls" else "") + "| steps to AdamW's final loss |",
                  "|---|---|---:|---:|---:|---:|---:|" + ("---:|" if task == "cls" else "") + "---:|"]  # fmt: skip
        for row in rows:
            reach = (f"{row['steps_to_target']:.0f} of {row['steps']}" if row["steps_to_target"] is not None
                     else f"not reached ({row['reached']}/{row['seeds']} seeds)")  # fmt: skip
            factor = row["lr_used"] / row["lr_given"]
            name_ = ("AdamW" if row["optimizer"] == "adamw" else
                     f"Adan, from_adamw lr x{factor:g}" + ("" if row["lr_multiplier"] else " (default rule)"))  # fmt: skip
            acc = f"| {row['accuracy_mean']:.3f} " if task == "cls" else ""
            lines.append(
                f"| {row['config']} | {name_} | {row['lr_used']:g} | {row['weight_decay']:g} | {row['warmup']:g} | "
                f"{row['seeds']} | {row['final_mean']:.4f} ± {row['final_sd']:.4f} {acc}| {reach} |"
            )
        lines += ["", f"![{task} curves]({name}_{task}.png)", ""]
    batch = [r for r in runs if r["task"] == "batch"]
    if batch:
        lines += ["## Batch-size sweep at an equal token budget (GPT-2 from scratch, seed 0)", "",
                  meta["tasks"].get("batch", ""), "",
                  "| batch size | steps | AdamW lr | AdamW final eval loss | Adan lr (translated) | Adan final eval loss | Adan − AdamW |",
                  "|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        for bs in sorted({r["batch_size"] for r in batch}):
            a = next((r for r in batch if r["batch_size"] == bs and r["optimizer"] == "adamw"), None)
            d = next((r for r in batch if r["batch_size"] == bs and r["optimizer"] == "adan"), None)
            if a and d:
                lines.append(f"| {bs} | {a['steps']} | {a['lr_used']:g} | {a['final_eval_loss']:.4f} | {d['lr_used']:g} | "
                             f"{d['final_eval_loss']:.4f} | {d['final_eval_loss'] - a['final_eval_loss']:+.4f} |")  # fmt: skip
        lines += ["", f"![batch sweep]({name}_batch.png)", ""]
    return "\n".join(lines)


def plot(results: dict[str, Any], out: Path, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["runs"]
    for task in ("lm", "cls"):
        task_runs = [r for r in runs if r["task"] == task]
        if not task_runs:
            continue
        fig, ax = plt.subplots(figsize=(8, 5))
        groups: dict[tuple, list] = {}
        for r in task_runs:
            groups.setdefault((r["optimizer"], r["lr_used"], r["lr_multiplier"]), []).append(r)
        for (optimizer, lr_used, mult), group in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1])):
            steps, losses = zip(*_mean_curve(group))
            main = any(r["config"] in ("adamw tuned", "adan translated", "adan tuned") for r in group)
            label = f"{'AdamW' if optimizer == 'adamw' else 'Adan'} lr {lr_used:g}"
            if optimizer == "adan":
                label += f" (from_adamw x{mult:g})" if mult else " (from_adamw, default)"
            label += f", {len(group)} seed{'s' if len(group) > 1 else ''}"
            if optimizer == "adamw":
                color = "tab:blue" if main else "lightsteelblue"
            else:
                color = {None: "tab:green", 1.0: "yellowgreen", 4.0: "darkolivegreen", 8.0: "teal"}.get(mult, "tab:olive")
            ax.plot(steps, losses, color=color,
                    lw=2.2 if main else 1.0, ls="-" if main else "--", alpha=1.0 if main else 0.6, label=label)  # fmt: skip
        finals = [r["final_eval_loss"] for r in task_runs if math.isfinite(r["final_eval_loss"])]
        if finals:
            ax.set_ylim(min(finals) - 0.1 * (1 if task == "lm" else 0.5), min(finals) + (2.0 if task == "lm" else 1.0))
        ax.set_xlabel("training step")
        ax.set_ylabel("eval loss (mean over seeds)")
        ax.set_title(f"{task}: AdamW tuned vs Adan translated (from_adamw=true)", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / f"{name}_{task}.png", dpi=110)
        plt.close(fig)
    batch = [r for r in runs if r["task"] == "batch"]
    if batch:
        fig, ax = plt.subplots(figsize=(6, 4))
        for optimizer, color in (("adamw", "tab:blue"), ("adan", "tab:green")):
            pts = sorted((r["batch_size"], r["final_eval_loss"]) for r in batch if r["optimizer"] == optimizer)
            if pts:
                ax.plot(*zip(*pts), "o-", color=color, label="AdamW" if optimizer == "adamw" else "Adan (from_adamw)")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size (sequences; equal token budget)")
        ax.set_ylabel("final eval loss")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / f"{name}_batch.png", dpi=110)
        plt.close(fig)


def write_report(results: dict[str, Any], out: Path, name: str) -> None:
    for r in results["runs"]:
        r["eval_curve"] = [tuple(x) for x in r["eval_curve"]]
    results["summary"] = {task: summarise_task(results["runs"], task) for task in ("lm", "cls")}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(results, indent=1))
    markdown = render(results, name)
    (out / f"{name}.md").write_text(markdown)
    plot(results, out, name)
    print(markdown)


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["lm", "cls"], choices=["lm", "cls", "batch"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--model-size", default="reduced", choices=list(MODEL_SIZES))
    parser.add_argument("--block-size", type=int, default=128)
    parser.add_argument("--eval-blocks", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16, help="sequences per optimizer step (lm, cls)")
    parser.add_argument("--max-micro-batch", type=int, default=16, help="larger batches use gradient accumulation")
    parser.add_argument("--lm-steps", type=int, default=200)
    parser.add_argument("--cls-steps", type=int, default=40)
    parser.add_argument("--cls-max-len", type=int, default=32)
    parser.add_argument("--cls-eval", type=int, default=256)
    parser.add_argument("--adamw-lrs-lm", type=_floats, default=[1e-3, 2e-3, 4e-3])
    parser.add_argument("--adamw-lrs-cls", type=_floats, default=[1e-4, 3e-4, 1e-3])  # 3e-3 diverged
    parser.add_argument("--adan-multipliers", type=_floats, default=[1.0, 4.0],
                        help="lr_multiplier values of Adan's own sweep (the default rule's multiplier always runs)")  # fmt: skip
    parser.add_argument("--batch-sizes", type=lambda t: [int(x) for x in t.split(",")], default=[8, 16, 64, 128])
    parser.add_argument("--batch-steps", type=int, default=200, help="steps at --batch-size; others keep the tokens")
    parser.add_argument("--batch-base-lr", type=float, default=2e-3, help="AdamW lr at --batch-size (lm's tuned lr)")
    parser.add_argument("--batch-lr-scaling", choices=["sqrt", "none"], default="sqrt")
    parser.add_argument("--evals-per-run", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--gpu", action="store_true", help="train on the GPU the Trainer finds (default: CPU)")
    parser.add_argument("--out", default=str(RESULTS_DIR))
    parser.add_argument("--name", default="adan_from_adamw")
    parser.add_argument("--from-json", default=None, help="re-render the report from a results JSON")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.from_json:
        write_report(json.loads(Path(args.from_json).read_text()), out, args.name)
        return 0

    import torch
    import transformers
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    t_start, load_start = time.time(), load_average()
    work = Path(tempfile.mkdtemp(prefix="adan_from_adamw_"))
    runs: list[dict[str, Any]] = []
    tasks_meta: dict[str, str] = {}
    if "lm" in args.tasks or "batch" in args.tasks:
        n_blocks = max(args.lm_steps * args.batch_size, args.batch_steps * args.batch_size)
        train_ds, eval_ds, vocab, source = lm_data(args, n_blocks)
        n_embd, n_layer, n_head, _ = MODEL_SIZES[args.model_size]
        model_text = f"GPT-2 {args.model_size} (n_embd {n_embd}, {n_layer} layers, {n_head} heads, context {args.block_size})"
        if "lm" in args.tasks:
            tasks_meta["lm"] = (f"{model_text}, {args.lm_steps} steps x {args.batch_size} sequences; data: {source}; "
                                f"AdamW recipe {RECIPES['lm']}")  # fmt: skip
            protocol("lm", args, (train_ds, eval_ds, vocab), work, runs)
        if "batch" in args.tasks:
            tasks_meta["batch"] = (
                f"{model_text}; {args.batch_steps * args.batch_size} sequences in every run "
                f"({args.batch_steps} steps at batch {args.batch_size}); AdamW lr {args.batch_base_lr:g} at batch "
                f"{args.batch_size}, scaled by {args.batch_lr_scaling}(batch/{args.batch_size}); Adan = "
                "from_adamw=true of that AdamW setting; micro-batches of "
                f"{args.max_micro_batch} with gradient accumulation."
            )
            batch_protocol(args, (train_ds, eval_ds, vocab), work, runs)
    if "cls" in args.tasks:
        train_ds, eval_ds, source = cls_data(args, args.cls_steps * args.batch_size)
        tasks_meta["cls"] = (f"all-MiniLM-L6-v2 + a new classification head, {args.cls_steps} steps x {args.batch_size} "
                             f"(one pass); data: {source}; AdamW recipe {RECIPES['cls']}")  # fmt: skip
        protocol("cls", args, (train_ds, eval_ds, None), work, runs)
    meta = {
        "command": "python benchmarks/bench_adan_from_adamw.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "tasks": tasks_meta, "threads": args.threads, "cpu": cpu_name(), "cores": os.cpu_count(),
        "torch": torch.__version__, "transformers": transformers.__version__, "load_avg_start": load_start,
        "load_avg_end": load_average(), "wall_s": time.time() - t_start,
    }  # fmt: skip
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    write_report({"meta": meta, "runs": runs}, out, args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
