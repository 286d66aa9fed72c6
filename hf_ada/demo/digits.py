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
           "build_digit_model", "pixel_values", "digit_images", "train_digit_classifier"]

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
