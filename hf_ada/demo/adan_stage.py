"""Demo part 1: fine-tune a small image classifier with the Trainer and ``optim="adan"``, AdamW beside it.

Data: scikit-learn's bundled digits (0 and 15 degree domains, the same data the AdaNPC demo adapts from),
a small ResNet built from a transformers config. Both optimizers see the same data, schedule, epochs and
seed; each at its own recommended hyperparameters. Output: eval loss / accuracy after every epoch, a PNG
plot, a markdown fragment, and the Adan-trained model saved with ``save_pretrained`` (its model card
records the optimizer).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

__all__ = ["OPTIMIZERS", "run_demo"]

#: (Trainer optim name, learning rate, weight decay, optim_args) for each optimizer compared.
OPTIMIZERS: dict[str, tuple[str, float, float, str | None]] = {
    "AdamW": ("adamw_torch", 2e-3, 0.05, None),
    # maintainers' advice: a few times AdamW's lr, smaller weight decay; fused=false: a short run of a small
    # model never earns back the fused kernel's compile
    "Adan": ("adan", 6e-3, 0.02, "fused=false"),
}


def _rows(processor, domains) -> list[dict[str, torch.Tensor]]:
    from .digits import pixel_values

    pixels = torch.cat([pixel_values(processor, d.images) for d in domains])
    labels = torch.from_numpy(np.concatenate([d.labels for d in domains])).long()
    return [{"pixel_values": p, "labels": y} for p, y in zip(pixels, labels)]


def _train_one(name: str, train_rows, eval_rows, epochs: int, seed: int, output_dir: Path | None):
    from transformers import Trainer, TrainingArguments

    import hf_ada  # noqa: F401  (registers optim="adan")

    from .digits import build_digit_model

    optim, lr, wd, optim_args = OPTIMIZERS[name]
    model = build_digit_model(seed)

    def accuracy(pred) -> dict[str, float]:
        return {"accuracy": float((np.argmax(pred.predictions, axis=-1) == pred.label_ids).mean())}

    with tempfile.TemporaryDirectory(prefix="hf-ada-demo-") as tmp:
        args = TrainingArguments(
            output_dir=str(output_dir or tmp), optim=optim, optim_args=optim_args, learning_rate=lr,
            weight_decay=wd, num_train_epochs=epochs, per_device_train_batch_size=32, warmup_steps=0.1,
            lr_scheduler_type="cosine", eval_strategy="epoch", logging_strategy="epoch", save_strategy="no",
            report_to="none", seed=seed, use_cpu=True, disable_tqdm=True,
        )  # fmt: skip
        trainer = Trainer(model=model, args=args, train_dataset=train_rows, eval_dataset=eval_rows,
                          compute_metrics=accuracy)  # fmt: skip
        trainer.train()
        history = [h for h in trainer.state.log_history if "eval_loss" in h]
        if output_dir is not None:
            trainer.save_model(str(output_dir))
            trainer.create_model_card(model_name=f"digits-resnet-{name.lower()}", tasks="image-classification")
            (output_dir / "training_args.bin").unlink(missing_ok=True)  # a pickle: not part of what we share
    return history


def _plot(curves: dict[str, list[dict[str, float]]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for name, history in curves.items():
        epochs = [h["epoch"] for h in history]
        axes[0].plot(epochs, [h["eval_loss"] for h in history], marker="o", label=name)
        axes[1].plot(epochs, [h["eval_accuracy"] for h in history], marker="o", label=name)
    axes[0].set(xlabel="epoch", ylabel="eval loss", title="held-out digits: loss")
    axes[1].set(xlabel="epoch", ylabel="eval accuracy", title="held-out digits: accuracy")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run_demo(out_dir: Path, quick: bool, seed: int = 0) -> dict[str, Any]:
    """Train the digit classifier with AdamW and with Adan; write ``adan_vs_adamw.png`` and a fragment.

    Returns the per-epoch eval histories, final metrics and the saved model folder.
    """
    from .digits import SOURCE_ANGLES, make_processor, rotated_digits

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    domains = rotated_digits(seed=seed)[: len(SOURCE_ANGLES)]  # the AdaNPC stage adapts this model
    processor = make_processor()
    train, held_out = [], []
    for d in domains:  # 80/20 split of each source domain
        cut = int(0.8 * len(d.labels))
        train.append(type(d)(d.angle, d.images[:cut], d.labels[:cut]))
        held_out.append(type(d)(d.angle, d.images[cut:], d.labels[cut:]))
    train_rows, eval_rows = _rows(processor, train), _rows(processor, held_out)
    epochs = 4 if quick else 20
    curves, model_dir = {}, out_dir / "adan-digits-classifier"
    for name in OPTIMIZERS:
        logger.info("demo: training the digit classifier with %s for %d epochs", name, epochs)
        curves[name] = _train_one(name, train_rows, eval_rows, epochs, seed, model_dir if name == "Adan" else None)
    plot = _plot(curves, out_dir / "adan_vs_adamw.png")
    final = {name: history[-1] for name, history in curves.items()}
    lines = [
        "| optimizer | lr | weight decay | final eval loss | final eval accuracy |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, last in final.items():
        _, lr, wd, _ = OPTIMIZERS[name]
        lines.append(f"| {name} | {lr:g} | {wd:g} | {last['eval_loss']:.4f} | {last['eval_accuracy']:.4f} |")
    fragment = (
        f"Small ResNet (from a transformers config) trained with the Trainer on {len(train_rows)} digits "
        f"(0 and 15 degree domains), evaluated on {len(eval_rows)} held-out digits after each of {epochs} epochs; "
        "same seed, schedule (cosine, 10% warm-up) and batch size for both.\n\n" + "\n".join(lines) + "\n"
    )
    return {"curves": curves, "final": final, "plot": plot, "model_dir": model_dir, "markdown": fragment,
            "epochs": epochs}  # fmt: skip
