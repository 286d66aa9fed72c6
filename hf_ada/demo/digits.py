"""The demo's image task: scikit-learn's bundled 8x8 digits, rotated into domains, and a small ResNet.

A miniature of the AdaNPC paper's Rotated-MNIST "series of domains" setting, offline and self-contained:
the digits are shuffled and split into disjoint domains rotated by 0, 15, 30, 45, 60 and 75 degrees. The
model is a small ResNet built from a transformers config (inputs upsampled to 16x16 RGB). Used by the Adan
and AdaNPC demo stages and by ``benchmarks/bench_adanpc.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = ["SOURCE_ANGLES", "STREAM_ANGLES", "LABELS", "IMAGE_SIZE", "Domain", "rotated_digits", "make_processor",
           "build_digit_model", "pixel_values", "digit_images", "train_digit_classifier", "CORRUPTIONS",
           "SEVERITIES", "corrupt", "split_digits", "label_shift_order"]

SOURCE_ANGLES = (0, 15)
STREAM_ANGLES = (30, 45, 60, 75)
LABELS = {i: str(i) for i in range(10)}


@dataclass
class Domain:
    angle: int
    images: np.ndarray  # (n, 8, 8) uint8 in [0, 255]
    labels: np.ndarray  # (n,)


def rotated_digits(angles: tuple[int, ...] = SOURCE_ANGLES + STREAM_ANGLES, seed: int = 0) -> list[Domain]:
    """Disjoint, shuffled chunks of sklearn's digits, chunk ``i`` rotated by ``angles[i]`` degrees."""
    from scipy.ndimage import rotate
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    domains = []
    for angle, chunk in zip(angles, np.array_split(order, len(angles))):
        imgs = digits.images[chunk] / 16.0
        rotated = np.stack([rotate(im, angle, reshape=False, order=1, mode="constant") for im in imgs])
        domains.append(Domain(angle, np.clip(rotated * 255, 0, 255).astype(np.uint8), digits.target[chunk]))
    return domains


IMAGE_SIZE = 16


def make_processor():
    """Image processor: digits upsampled to 16x16 RGB (PIL backend: no torchvision needed).

    RGB because the image-classification pipeline converts every PIL input to RGB.
    """
    from transformers import ViTImageProcessorPil

    return ViTImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, image_mean=[0.5] * 3,
                                image_std=[0.5] * 3)


def build_digit_model(seed: int = 0):
    """A small ResNet (two basic stages, 32/64 channels) built from a transformers config, 10 digit labels."""
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(seed)
    config = ResNetConfig(num_channels=3, embedding_size=32, hidden_sizes=[32, 64], depths=[1, 1],
                          layer_type="basic", downsample_in_first_stage=False, num_labels=10, id2label=LABELS,
                          label2id={v: k for k, v in LABELS.items()})
    return ResNetForImageClassification(config)


def pixel_values(processor, images: np.ndarray) -> torch.Tensor:
    return processor(images=digit_images(images), return_tensors="pt")["pixel_values"]


def digit_images(images: np.ndarray) -> list:
    """``(n, 8, 8)`` uint8 arrays as RGB PIL images (what a user would feed the pipeline)."""
    from PIL import Image

    return [Image.fromarray(im, mode="L").convert("RGB") for im in images]


def train_digit_classifier(train: list[Domain], processor, epochs: int, seed: int = 0,
                           optim: str = "adan", learning_rate: float = 2e-3, output_dir: str | Path | None = None):
    """Train :func:`build_digit_model` on ``train`` with the Trainer and ``optim`` (default Adan)."""
    import tempfile

    import hf_ada  # noqa: F401  (registers optim="adan")
    from transformers import Trainer, TrainingArguments

    model = build_digit_model(seed)
    pixels = torch.cat([pixel_values(processor, d.images) for d in train])
    labels = torch.from_numpy(np.concatenate([d.labels for d in train])).long()
    rows = [{"pixel_values": p, "labels": y} for p, y in zip(pixels, labels)]
    with tempfile.TemporaryDirectory(prefix="adanpc-demo-train-") as tmp:
        args = TrainingArguments(
            output_dir=str(output_dir or tmp), optim=optim, learning_rate=learning_rate, weight_decay=0.02,
            num_train_epochs=epochs, per_device_train_batch_size=32, warmup_steps=20, lr_scheduler_type="cosine",
            logging_strategy="no", save_strategy="no", report_to=[], seed=seed, use_cpu=True,
            dataloader_num_workers=0, disable_tqdm=True,
        )
        Trainer(model=model, args=args, train_dataset=rows).train()
    return model.eval()


# ----------------------------------------------------------------------------- corruptions (AdaNPC benchmark)
#: parameter of each corruption at severities 1..5 (images in [0, 1], 8x8 pixels): noise sigma, impulse
#: fraction, blur sigma (pixels), contrast factor, pixelation size, rotation (degrees). Scaled, like
#: ImageNet-C, by the *unadapted* model's accuracy only: about 0.95-0.99 at severity 1 and 0.45-0.55 at
#: severity 5 for the benchmark's digit ResNet (pixelation, a validation corruption, goes further).
SEVERITIES = {
    "gaussian_noise": (0.1, 0.2, 0.3, 0.4, 0.55),
    "impulse_noise": (0.05, 0.1, 0.15, 0.2, 0.3),
    "gaussian_blur": (0.4, 0.5, 0.6, 0.7, 0.8),
    "contrast": (0.8, 0.7, 0.6, 0.5, 0.45),
    "pixelate": (7, 6, 5, 4, 3),
    "rotate": (10, 15, 20, 25, 30),
}
CORRUPTIONS = tuple(SEVERITIES)


def corrupt(images: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """``(n, 8, 8)`` uint8 digits corrupted by ``name`` (one of :data:`CORRUPTIONS`) at ``severity`` 1..5."""
    from scipy.ndimage import gaussian_filter, rotate

    if name not in SEVERITIES:
        raise ValueError(f"corruption must be one of {CORRUPTIONS}, got {name!r}")
    if not 1 <= int(severity) <= 5:
        raise ValueError(f"severity must be 1..5, got {severity!r}")
    value = SEVERITIES[name][int(severity) - 1]
    rng = np.random.default_rng(seed)
    x = images.astype(np.float64) / 255.0
    if name == "gaussian_noise":
        x = x + rng.normal(scale=value, size=x.shape)
    elif name == "impulse_noise":
        hit = rng.random(x.shape) < value
        x = np.where(hit, rng.integers(0, 2, size=x.shape).astype(np.float64), x)
    elif name == "gaussian_blur":
        x = np.stack([gaussian_filter(im, value, mode="constant") for im in x])
    elif name == "contrast":
        means = x.mean(axis=(1, 2), keepdims=True)
        x = (x - means) * value + means
    elif name == "pixelate":
        from PIL import Image

        side = x.shape[-1]
        x = np.stack([np.asarray(Image.fromarray(im.astype(np.float32), mode="F").resize((value, value), Image.BOX)
                                 .resize((side, side), Image.NEAREST)) for im in x])
    else:  # rotate
        x = np.stack([rotate(im, value, reshape=False, order=1, mode="constant") for im in x])
    return np.clip(np.round(x * 255), 0, 255).astype(np.uint8)


def split_digits(seed: int = 0, fractions: tuple[float, float, float] = (0.5, 0.1, 0.4)) -> tuple[Domain, Domain, Domain]:
    """sklearn's digits shuffled into disjoint train / validation / test parts (clean, ``angle`` 0)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    cuts = np.cumsum([int(round(f * len(order))) for f in fractions[:-1]])
    parts = np.split(order, cuts)
    images = np.clip(digits.images * 16, 0, 255).astype(np.uint8)
    return tuple(Domain(0, images[p], digits.target[p]) for p in parts)  # type: ignore[return-value]


def label_shift_order(labels: np.ndarray, seed: int = 0, spread: float = 0.08) -> np.ndarray:
    """A permutation of ``labels`` whose class proportions drift over time: class ``c`` peaks at time
    ``c / C`` of the stream (times jittered by ``spread``), so each stretch is dominated by two or three
    classes and every class appears once."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    peak = {c: i / len(classes) for i, c in enumerate(classes)}
    times = np.array([peak[c] for c in labels]) + rng.normal(scale=spread, size=len(labels))
    return np.argsort(times, kind="stable")
