"""Convergence: a GPT-2-style model trained from scratch with the transformers ``Trainer``, ``optim="adan"``
(hf-ada) against ``optim="adamw_torch"``, each at its recommended hyperparameters plus a small lr sweep.

Data: real text that every checkout has next to it, the Debian package descriptions in
``../shared/data/debian-packages.parquet`` (one document per distinct description; documents are split
train / eval by a hash of ``description_md5``, so no description is in both). Without that file the script
falls back to the Python standard library's own ``.py`` sources (split by file). A byte-level BPE tokenizer
(``tokenizers``) is trained on training documents only. Text is packed into blocks of ``--block-size``
tokens; every run sees the same blocks in the same order (same seed), starts from the same initial weights
and uses the same schedule (linear warm-up over 5% of the steps, cosine decay to 0, gradient clipping at 1.0).

Hyperparameters ("recommended" = what a user would start from):

* AdamW: betas (0.9, 0.95), weight decay 0.1, lr 1e-3 (the nanoGPT setting for small GPTs; GPT-2 small
  itself uses 6e-4), sweep x0.5 / x1 / x2;
* Adan: betas (0.98, 0.92, 0.99), weight decay 0.02, lr 4e-3: "a few times the AdamW lr and a smaller
  weight decay" (the maintainers' advice, sail-sg/Adan issues #29 / #48; their GPT-2 345M recipe used
  lr 2.5e-3, wd 0.05, beta3 0.95, i.e. several times Megatron's AdamW lr), sweep x0.5 / x1 / x2.

Reported: eval-loss curves (PNG), final eval loss of every run, and the number of steps Adan needs to reach
AdamW's final eval loss (recommended vs recommended, and best-of-sweep vs best-of-sweep), as a ratio.

Usage::

    python benchmarks/bench_adan_convergence.py                    # default ("reduced" size, ~20-30 min)
    python benchmarks/bench_adan_convergence.py --model-size tiny --steps 60   # smoke test, ~2 min
    python benchmarks/bench_adan_convergence.py --model-size small --steps 2000 --threads 2
    python benchmarks/bench_adan_convergence.py --lrs adamw=6e-4,1e-3 adan=2e-3,4e-3

Writes ``benchmarks/results/adan_convergence.md``, ``.png`` and ``.json`` (``--out`` to change the folder).

The switching protocol of issue 13 (tuned AdamW vs the ``--optim_args from_adamw=true`` translation vs Adan's
own small sweep, 3 seeds, plus a MiniLM fine-tuning task and a batch-size sweep at equal token budget) lives in
``bench_adan_from_adamw.py``, which reuses this script's data, tokenizer and model sizes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
sys.path.insert(0, str(BENCH_DIR))

from _machine import cpu_name, load_average  # noqa: E402

from _lm_corpus import (  # noqa: E402
    MODEL_SIZES,
    load_documents,
    pack_blocks,
    steps_to_reach,
    train_tokenizer,
)

RECIPES: dict[str, dict[str, Any]] = {
    "adamw": {"optim": "adamw_torch", "lr": 1e-3, "weight_decay": 0.1, "betas": (0.9, 0.95)},
    "adan": {"optim": "adan", "lr": 4e-3, "weight_decay": 0.02, "betas": (0.98, 0.92, 0.99)},
}
SWEEP_FACTORS = (0.5, 1.0, 2.0)
DEFAULT_STEPS = 300


# ------------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------------


def parse_lrs(items: list[str] | None) -> dict[str, list[float]]:
    """``["adamw=5e-4,1e-3", "adan=4e-3"]`` -> {"adamw": [...], "adan": [...]}; default: recommended x sweep."""
    lrs = {name: [r["lr"] * f for f in SWEEP_FACTORS] for name, r in RECIPES.items()}
    for item in items or []:
        name, _, values = item.partition("=")
        if name not in RECIPES or not values:
            raise ValueError(f"--lrs entry {item!r}: expected NAME=LR[,LR...] with NAME in {sorted(RECIPES)}")
        try:
            lrs[name] = [float(v) for v in values.split(",") if v]
        except ValueError as err:
            raise ValueError(f"--lrs entry {item!r}: {err}") from err
    return lrs


def train_one(
    name: str, lr: float, *, args: argparse.Namespace, train_ds, eval_ds, vocab_size: int, out_dir: Path
) -> dict[str, Any]:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments, set_seed

    import hf_ada  # noqa: F401  (registers optim="adan")

    recipe = RECIPES[name]
    n_embd, n_layer, n_head, _ = MODEL_SIZES[args.model_size]
    set_seed(args.seed)
    config = GPT2Config(
        n_embd=n_embd, n_layer=n_layer, n_head=n_head, vocab_size=vocab_size, n_positions=args.block_size,
        bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    model = GPT2LMHeadModel(config)
    extra: dict[str, Any] = {}
    if name == "adan":
        b1, b2, b3 = recipe["betas"]
        extra["optim_args"] = f"beta1={b1},beta2={b2},beta3={b3}"
    else:
        extra["adam_beta1"], extra["adam_beta2"] = recipe["betas"]
    targs = TrainingArguments(
        output_dir=str(out_dir / f"{name}_lr{lr:g}"),
        optim=recipe["optim"],
        learning_rate=lr,
        weight_decay=recipe["weight_decay"],
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size * 2,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, round(0.05 * args.steps)),
        max_grad_norm=1.0,
        eval_strategy="steps",
        eval_steps=args.eval_every,
        eval_on_start=True,
        logging_steps=args.eval_every,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=args.seed,
        data_seed=args.seed,
        dataloader_num_workers=0,
        use_cpu=True,
        **extra,
    )
    trainer = Trainer(model=model, args=targs, train_dataset=train_ds, eval_dataset=eval_ds)
    t0 = time.time()
    trainer.train()
    last = trainer.evaluate() if args.steps % args.eval_every else None
    wall = time.time() - t0
    curve = [(h["step"], h["eval_loss"]) for h in trainer.state.log_history if "eval_loss" in h]
    if last is not None:
        curve.append((args.steps, last["eval_loss"]))
    curve = sorted(dict(curve).items())
    train_losses = [(h["step"], h["loss"]) for h in trainer.state.log_history if "loss" in h]
    return {
        "name": name,
        "lr": lr,
        "recommended": math.isclose(lr, recipe["lr"], rel_tol=1e-9),
        "weight_decay": recipe["weight_decay"],
        "betas": list(recipe["betas"]),
        "eval_curve": curve,
        "train_curve": train_losses,
        "final_eval_loss": curve[-1][1],
        "wall_s": wall,
        "n_params": sum(p.numel() for p in model.parameters()),
        "optimizer_class": type(trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer")
                                else trainer.optimizer).__name__,  # fmt: skip
        "torch_threads": torch.get_num_threads(),
    }


# ------------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------------


def _finite(x: float) -> bool:
    return x is not None and math.isfinite(x)


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def pick(name: str, rec: bool) -> dict[str, Any] | None:
        cands = [r for r in runs if r["name"] == name and (r["recommended"] or not rec)]
        cands = [r for r in cands if _finite(r["final_eval_loss"])]
        return min(cands, key=lambda r: r["final_eval_loss"]) if cands else None

    out: dict[str, Any] = {}
    for label, rec in (("recommended", True), ("best_of_sweep", False)):
        adamw, adan = pick("adamw", rec), pick("adan", rec)
        if not (adamw and adan):
            continue
        target = adamw["final_eval_loss"]
        adamw_steps = steps_to_reach(adamw["eval_curve"], target)
        adan_steps = steps_to_reach(adan["eval_curve"], target)
        out[label] = {
            "adamw_lr": adamw["lr"],
            "adan_lr": adan["lr"],
            "adamw_final": target,
            "adan_final": adan["final_eval_loss"],
            "adamw_steps": adamw_steps,
            "adan_steps": adan_steps,
            "ratio": adan_steps / adamw_steps if adan_steps is not None and adamw_steps else None,
            # the other direction, useful when Adan never gets there: when did AdamW reach Adan's final loss?
            "adamw_steps_to_adan_final": steps_to_reach(adamw["eval_curve"], adan["final_eval_loss"]),
            "total_steps": adamw["eval_curve"][-1][0],
        }
    return out


def _steps(value: float | None) -> str:
    return "not reached" if value is None else f"{value:.0f}"


def render_markdown(runs: list[dict[str, Any]], summary: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [
        "# Adan vs AdamW: convergence of a GPT-2-style model trained from scratch (CPU)",
        "",
    ]
    if meta["reduced"]:
        steps_note = (
            f" and {meta['steps']} steps instead of the script's default {DEFAULT_STEPS}"
            if meta["steps"] < DEFAULT_STEPS else f", {meta['steps']} steps"
        )
        lines += [
            f"> **Reduced run.** Model size `{meta['model_size']}` ({meta['n_params'] / 1e6:.1f}M parameters)"
            f"{steps_note}: the ~10-20M-parameter setting (`--model-size small`) does not fit a ~20-minute "
            "budget on 2 CPU cores, and the cores this ran on were shared with other jobs (load average "
            f"{meta['load_avg_start']} at the start, {meta['load_avg_end']} at the end; one training step took "
            "several times longer than on an idle machine). Short runs of a small model favour whichever "
            "optimizer moves fastest early; read the numbers as indicative, not as a replication of the "
            "paper's GPT-2 result.",
            "",
        ]
    lines += [
        f"Command: `{meta['command']}`  ",
        f"Data: {meta['data']}; {meta['train_tokens']:,} training tokens ({meta['steps']} steps x "
        f"{meta['batch_size']} x {meta['block_size']} tokens, one pass, no repeats), eval on "
        f"{meta['eval_blocks']} held-out blocks ({meta['eval_blocks'] * meta['block_size']:,} tokens). "
        f"Byte-level BPE tokenizer, vocab {meta['vocab_size']}, trained on training documents only.  ",
        f"Model: GPT-2 (n_embd {meta['n_embd']}, {meta['n_layer']} layers, {meta['n_head']} heads, context "
        f"{meta['block_size']}), {meta['n_params'] / 1e6:.2f}M parameters; same initial weights and batch "
        "order for every run. Schedule: linear warm-up over 5% of the steps, cosine to 0, grad-norm clip 1.0. "
        f"Trainer `optim=\"adan\"` (hf-ada, default path) vs `optim=\"adamw_torch\"`.  ",
        f"Machine: {meta['cpu']}, {meta['cores']} cores, {meta['threads']} torch thread(s), torch {meta['torch']}, "
        f"transformers {meta['transformers']}; load average {meta['load_avg_start']} at the start, "
        f"{meta['load_avg_end']} at the end; total wall time {meta['wall_s'] / 60:.1f} min.",
        "",
        "## Runs",
        "",
        "| optimizer | lr | weight decay | betas | recommended | final eval loss | wall s |",
        "|---|---:|---:|---|:-:|---:|---:|",
    ]
    for r in sorted(runs, key=lambda r: (r["name"] != "adamw", r["lr"])):
        lines.append(
            f"| {'Adan (hf-ada)' if r['name'] == 'adan' else 'AdamW (torch)'} | {r['lr']:g} | {r['weight_decay']:g} "
            f"| {tuple(r['betas'])} | {'yes' if r['recommended'] else ''} | {r['final_eval_loss']:.4f} | "
            f"{r['wall_s']:.0f} |"
        )
    lines += [
        "",
        "## Steps to reach AdamW's final eval loss",
        "",
        "Adan steps / AdamW steps (linear interpolation between evaluations every "
        f"{meta['eval_every']} steps). The paper reports about 0.5 for GPT-2 (Adan at 150k steps matching "
        "Adam at 300k).",
        "",
        "| comparison | AdamW lr | AdamW final loss | AdamW steps | Adan lr | Adan final loss | Adan steps "
        "| ratio Adan / AdamW | AdamW steps to Adan's final loss |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, s in summary.items():
        adan_steps = f"{s['adan_steps']:.0f}" if s["adan_steps"] is not None else "not reached"
        ratio = f"{s['ratio']:.2f}" if s["ratio"] is not None else "n/a (not reached)"
        lines.append(
            f"| {label.replace('_', ' ')} | {s['adamw_lr']:g} | {s['adamw_final']:.4f} | {s['adamw_steps']:.0f} "
            f"| {s['adan_lr']:g} | {s['adan_final']:.4f} | {adan_steps} | **{ratio}** | "
            f"{_steps(s.get('adamw_steps_to_adan_final'))} |"
        )
    lines += ["", "![eval loss curves](adan_convergence.png)", ""]
    return "\n".join(lines)


def plot(runs: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    cmaps = {"adamw": plt.get_cmap("Blues"), "adan": plt.get_cmap("Greens")}
    for name in ("adamw", "adan"):
        group = sorted((r for r in runs if r["name"] == name), key=lambda r: r["lr"])
        for i, r in enumerate(group):
            steps, losses = zip(*r["eval_curve"])
            shade = 0.45 + 0.5 * (i + 1) / (len(group) + 1)
            ax.plot(
                steps, losses, color=cmaps[name](shade), lw=2.5 if r["recommended"] else 1.2,
                ls="-" if r["recommended"] else "--",
                label=f"{'Adan' if name == 'adan' else 'AdamW'} lr {r['lr']:g}" + (" (recommended)" if r["recommended"] else ""),
            )  # fmt: skip
    finals = [r["final_eval_loss"] for r in runs if _finite(r["final_eval_loss"])]
    if finals:
        ax.set_ylim(min(finals) - 0.1, min(finals) + 2.0)
    ax.set_xlabel("training step")
    ax.set_ylabel("eval loss (held-out blocks)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)






def merge_results(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One results dict from several runs of this script (same data and model): their runs, one per
    (optimizer, lr)."""
    meta = dict(results[0]["meta"])
    for other in results[1:]:
        for key in ("model_size", "steps", "batch_size", "block_size", "data"):
            if other["meta"][key] != meta[key]:
                raise ValueError(f"--from-json: cannot merge runs with different {key}: {meta[key]!r} vs "
                                 f"{other['meta'][key]!r}")  # fmt: skip
        meta["command"] += "` + `" + other["meta"]["command"]
        meta["wall_s"] += other["meta"]["wall_s"]
        meta["load_avg_end"] = other["meta"]["load_avg_end"]
    by_key = {(r["name"], r["lr"]): r for res in results for r in res["runs"]}  # a later file's run wins
    return {"meta": meta, "runs": list(by_key.values())}


def write_report(results: dict[str, Any], out: Path) -> int:
    """Write ``adan_convergence.{json,md,png}`` into ``out`` and print the markdown."""
    meta, runs = results["meta"], results["runs"]
    for r in runs:  # JSON turns the (step, loss) tuples into lists
        r["eval_curve"] = [tuple(x) for x in r["eval_curve"]]
    results["summary"] = summary = summarise(runs)  # recomputed: runs may have been merged from several files
    out.mkdir(parents=True, exist_ok=True)
    (out / "adan_convergence.json").write_text(json.dumps(results, indent=1))
    markdown = render_markdown(runs, summary, meta)
    (out / "adan_convergence.md").write_text(markdown)
    if runs:
        corpus = "Debian descriptions" if "Debian" in meta["data"] else "stdlib sources"
        plot(runs, out / "adan_convergence.png",
             f"GPT-2 {meta['n_params'] / 1e6:.1f}M from scratch, {meta['steps']} steps, {corpus}")  # fmt: skip
    print(markdown)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-size", default="reduced", choices=list(MODEL_SIZES))
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="training steps per run")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--block-size", type=int, default=128, help="tokens per sequence")
    parser.add_argument("--eval-every", type=int, default=20, help="evaluate every N steps")
    parser.add_argument("--eval-blocks", type=int, default=64, help="held-out blocks in the eval set")
    parser.add_argument(
        "--lrs", nargs="*", default=None, metavar="NAME=LR,...",
        help="learning rates per optimizer, e.g. adamw=5e-4,1e-3 adan=4e-3 (default: recommended x 0.5/1/2)",
    )  # fmt: skip
    parser.add_argument("--optimizers", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (1-2 on a shared machine)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS_DIR))
    parser.add_argument(
        "--from-json", nargs="+", default=None, metavar="JSON",
        help="no training: re-render the markdown/PNG from results JSON file(s); several files are merged "
        "(e.g. an extra --lrs run), the first one's settings head the report",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.from_json:
        return write_report(merge_results([json.loads(Path(p).read_text()) for p in args.from_json]), Path(args.out))
    for name in ("steps", "batch_size", "block_size", "eval_every", "eval_blocks", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    try:
        lrs = parse_lrs(args.lrs)
    except ValueError as err:
        parser.error(str(err))

    import torch
    import transformers
    from datasets import Dataset
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    t_start, load_start = time.time(), load_average()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    n_embd, n_layer, n_head, vocab_size = MODEL_SIZES[args.model_size]
    train_docs, eval_docs, source = load_documents()
    import random

    random.Random(args.seed).shuffle(train_docs)
    tokenizer = train_tokenizer(train_docs[:20000], vocab_size)
    n_train = args.steps * args.batch_size
    train_blocks = pack_blocks(tokenizer, train_docs, n_train, args.block_size)
    eval_blocks = pack_blocks(tokenizer, eval_docs, args.eval_blocks, args.block_size)
    train_ds = Dataset.from_dict({"input_ids": train_blocks, "labels": train_blocks})
    eval_ds = Dataset.from_dict({"input_ids": eval_blocks, "labels": eval_blocks})
    print(f"data: {source}; {len(train_blocks)} train / {len(eval_blocks)} eval blocks of {args.block_size}", flush=True)

    runs: list[dict[str, Any]] = []
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="adan_convergence_"))
    for name in args.optimizers:
        for lr in lrs[name]:
            print(f"training {name} lr={lr:g} ...", flush=True)
            try:
                res = train_one(name, lr, args=args, train_ds=train_ds, eval_ds=eval_ds,
                                vocab_size=len(tokenizer), out_dir=work)  # fmt: skip
            except Exception as err:  # a diverging lr must not lose the other runs
                print(f"  failed: {err!r}", flush=True)
                continue
            runs.append(res)
            print(f"  final eval loss {res['final_eval_loss']:.4f} ({res['wall_s']:.0f} s, "
                  f"{res['optimizer_class']})", flush=True)  # fmt: skip
    meta = {
        "command": "python benchmarks/bench_adan_convergence.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "model_size": args.model_size,
        "reduced": args.model_size in ("tiny", "reduced"),
        "n_params": runs[0]["n_params"] if runs else 0,
        "n_embd": n_embd,
        "n_layer": n_layer,
        "n_head": n_head,
        "vocab_size": len(tokenizer),
        "steps": args.steps,
        "batch_size": args.batch_size,
        "block_size": args.block_size,
        "eval_every": args.eval_every,
        "eval_blocks": args.eval_blocks,
        "train_tokens": n_train * args.block_size,
        "data": source,
        "threads": args.threads,
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "load_avg_start": load_start,
        "load_avg_end": load_average(),
        "wall_s": time.time() - t_start,
    }
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return write_report({"meta": meta, "runs": runs}, out)


if __name__ == "__main__":
    sys.exit(main())
