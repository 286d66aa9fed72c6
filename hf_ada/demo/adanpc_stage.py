"""AdaNPC on rotated digits: train on 0/15 degrees with the Trainer (``optim="adan"``), test on a drifting stream.

A miniature of the paper's Rotated-MNIST "series of domains" setting, offline and self-contained:
scikit-learn's bundled 8x8 digits are shuffled and split into six disjoint domains rotated by 0, 15, 30,
45, 60 and 75 degrees. A small ResNet built from a transformers config (inputs upsampled to 16x16) is trained on the 0 and 15 degree domains; the
30 -> 45 -> 60 -> 75 degree domains then arrive in series, in batches, and are classified by

* ERM: the trained model's own head (no adaptation);
* T3A: the template adjuster (:class:`~hf_ada.adanpc.T3AClassifier`, ``filter_k=100``);
* kNN: AdaNPC's vote without insertion (``insert="none"``);
* AdaNPC: the vote with the test samples the collapse guard lets in (``AdaNPCConfig()``, the default).

:func:`run_demo` is used by ``hf-ada demo`` and by ``benchmarks/bench_adanpc.py``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hf_ada.common.files import atomic_file
from hf_ada.adanpc import AdaNPCConfig, AdaNPCPredictor, T3AClassifier

from .digits import SOURCE_ANGLES, STREAM_ANGLES, Domain, make_processor, pixel_values, rotated_digits, train_digit_classifier

logger = logging.getLogger(__name__)

__all__ = ["METHODS", "evaluate_stream", "plot_stream", "markdown_table", "run_demo"]

METHODS = ("ERM", "T3A", "kNN (AdaNPC, no insertion)", "AdaNPC")


def evaluate_stream(model, processor, source: list[Domain], stream: list[Domain],
                    config: AdaNPCConfig | None = None, batch_size: int = 32, t3a_filter_k: int | None = 100):
    """Run every method of :data:`METHODS` over the stream.

    Returns ``(accuracy, hits, predictions, predictor)``: per-domain accuracy per method, per-sample
    correctness and predicted labels along the stream per method, and the adapted AdaNPC predictor.

    Features are computed once per domain through the AdaNPC feature hook (the input of the ViT's head);
    the adaptive methods then see the stream batch by batch, in domain order.
    """
    config = config or AdaNPCConfig()
    adanpc = AdaNPCPredictor(model, processor, config)
    knn = AdaNPCPredictor(model, processor, AdaNPCConfig(**{**config.to_dict(), "insert": "none"}))
    for domain in source:
        feats, _ = adanpc.hook.run({"pixel_values": pixel_values(processor, domain.images)})
        adanpc.add_source(feats, domain.labels)
        knn.add_source(feats, domain.labels)
    adanpc.memory.info.setdefault("sources", []).append({
        "dataset": f"sklearn digits rotated {', '.join(str(d.angle) for d in source)} degrees",
        "num_rows": int(sum(len(d.labels) for d in source)), "input_column": "image", "label_column": "label"})
    t3a = T3AClassifier.from_model(model, filter_k=t3a_filter_k)
    predictions: dict[str, list[np.ndarray]] = {m: [] for m in METHODS}
    for domain in stream:
        feats, logits = adanpc.hook.run({"pixel_values": pixel_values(processor, domain.images)})
        logits = logits.numpy()
        for start in range(0, len(domain.labels), batch_size):
            sl = slice(start, start + batch_size)
            predictions["ERM"].append(logits[sl].argmax(1))
            predictions["T3A"].append(t3a(feats[sl]).argmax(1))
            predictions["kNN (AdaNPC, no insertion)"].append(knn.predict_features(feats[sl]).argmax(1))
            predictions["AdaNPC"].append(adanpc.predict_features(feats[sl], logits=logits[sl]).argmax(1))
    predicted = {m: np.concatenate(p) for m, p in predictions.items()}
    truth = np.concatenate([d.labels for d in stream])
    flat = {m: p == truth for m, p in predicted.items()}
    bounds = np.cumsum([0] + [len(d.labels) for d in stream])
    accuracy = {m: {d.angle: float(flat[m][bounds[i]:bounds[i + 1]].mean()) for i, d in enumerate(stream)}
                for m in METHODS}
    for m in METHODS:
        accuracy[m]["mean"] = float(np.mean([accuracy[m][d.angle] for d in stream]))
    return accuracy, flat, predicted, adanpc


def plot_stream(accuracy: dict, hits: dict, stream: list[Domain], path: Path, title: str, window: int = 60) -> Path:
    """Two panels: accuracy per domain, and running accuracy along the stream."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    angles = [d.angle for d in stream]
    for method in accuracy:
        left.plot(angles, [accuracy[method][a] for a in angles], marker="o", label=method)
        h = hits[method].astype(float)
        running = np.convolve(h, np.ones(window) / window, mode="valid")
        right.plot(np.arange(len(running)) + window, running, label=method, linewidth=1)
    left.set(xlabel="rotation of the test domain (degrees)", ylabel="accuracy", title="per domain")
    bounds = np.cumsum([len(d.labels) for d in stream])[:-1]
    for b in bounds:
        right.axvline(b, color="grey", linestyle=":", linewidth=0.8)
    right.set(xlabel="test sample (domains 30 -> 75 degrees in series)", ylabel=f"running accuracy ({window})",
              title="along the stream")
    left.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def markdown_table(accuracy: dict, stream_angles: tuple[int, ...] = STREAM_ANGLES) -> str:
    header = "| method | " + " | ".join(f"{a} deg" for a in stream_angles) + " | mean |\n"
    header += "| --- |" + " ---: |" * (len(stream_angles) + 1) + "\n"
    rows = "".join(
        f"| {m} | " + " | ".join(f"{acc[a]:.3f}" for a in stream_angles) + f" | {acc['mean']:.3f} |\n"
        for m, acc in accuracy.items()
    )
    return header + rows


def run_demo(out_dir: Path, quick: bool, train_optim: str = "adan", seed: int = 0,
             model_dir: str | Path | None = None) -> dict[str, Any]:
    """Train (or load ``model_dir``: the classifier ``hf-ada demo``'s Adan stage trained on the same source
    domains), adapt along the rotated-digits stream, write ``adanpc_demo.png`` / ``adanpc_demo.md`` and the
    AdaNPC predictor folder (source memory only) into ``out_dir``; return the numbers and paths.

    Training: 6 epochs with ``quick=True``, otherwise 30.
    """
    torch.set_num_threads(min(2, torch.get_num_threads()))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    domains = rotated_digits(seed=seed)
    source, stream = domains[: len(SOURCE_ANGLES)], domains[len(SOURCE_ANGLES):]
    processor = make_processor()
    if model_dir is not None:
        from transformers import AutoModelForImageClassification

        model = AutoModelForImageClassification.from_pretrained(str(model_dir)).eval()
        epochs = "the Adan stage's"
    else:
        epochs = 6 if quick else 30
        model = train_digit_classifier(source, processor, epochs=epochs, seed=seed, optim=train_optim)
    train_seconds = time.perf_counter() - started
    accuracy, hits, predicted, predictor = evaluate_stream(model, processor, source, stream)
    adapted_entries = predictor.memory.num_test
    predictor.reset()
    predictor_dir = predictor.save_pretrained(out_dir / "adanpc_digits_predictor")
    title = (f"Rotated digits, trained on 0/15 deg ({train_optim}, {epochs} epochs)" if model_dir is None else
             "Rotated digits, the classifier the Adan stage trained on 0/15 deg")
    png = plot_stream(accuracy, hits, stream, out_dir / "adanpc_demo.png", title)
    fragment = (
        f"### AdaNPC on rotated digits\n\n{title}; test stream 30 -> 45 -> 60 -> 75 degrees in batches of 32, "
        f"{sum(len(d.labels) for d in stream)} samples. Accuracy:\n\n{markdown_table(accuracy)}\n"
        f"![accuracy along the stream]({png.name})\n"
    )
    markdown = out_dir / "adanpc_demo.md"
    with atomic_file(markdown) as handle:
        handle.write(fragment)
    return {
        "accuracy": accuracy,
        "epochs": epochs,
        "train_optim": train_optim,
        "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
        "num_source": predictor.memory.num_source,
        "num_test_inserted": adapted_entries,
        "classes_predicted_last_domain": {m: int(len(np.unique(p[-len(stream[-1].labels):])))
                                          for m, p in predicted.items()},
        "png": png,
        "markdown": markdown,
        "predictor_dir": Path(predictor_dir),
    }
