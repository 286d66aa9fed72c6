"""The parameter sets the Adan step benchmarks time: GPT-2 models of a few sizes (built from a config, no
weights downloaded) and a fixed mixed-shape set. Shared by ``bench_adan_step.py`` and ``bench_adan_overheads.py``."""

from __future__ import annotations

# GPT-2 configs: (n_embd, n_layer, vocab_size) -> ~1.1M / ~25M / ~98M parameters, 52 / 76 / 148 tensors;
# "12.6M-mixed" is a fixed list of 28 tensors of mixed shapes (MIXED_SHAPES), not a GPT-2.
MODEL_SIZES: dict[str, tuple[int, int, int] | None] = {
    "1M": (128, 4, 2048),
    "12.6M-mixed": None,
    "25M": (512, 6, 12288),
    "100M": (768, 12, 16384),
}

#: 28 tensors, 12.62M elements: an embedding, three transformer-style layers (qkv, projection, two MLP
#: matrices, their biases and norms), a 4-D convolution kernel and a final norm.
MIXED_SHAPES: list[tuple[int, ...]] = (
    [(6150, 512)]
    + [shape for _ in range(3) for shape in [(512, 1536), (1536,), (512, 512), (512,), (512, 2048), (2048,),
                                             (2048, 512), (512,)]]  # fmt: skip
    + [(64, 32, 3, 3), (512,), (512,)]
)


def build_params(size: str, seed: int = 0) -> list:
    """Parameters of a GPT-2 model of the given size (tied embeddings counted once)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.manual_seed(seed)
    if MODEL_SIZES[size] is None:
        return [torch.nn.Parameter(torch.randn(shape) * 0.02) for shape in MIXED_SHAPES]
    n_embd, n_layer, vocab = MODEL_SIZES[size]
    config = GPT2Config(
        n_embd=n_embd, n_layer=n_layer, n_head=max(2, n_embd // 64), vocab_size=vocab, n_positions=256,
        bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    model = GPT2LMHeadModel(config)
    return [p for p in model.parameters() if p.requires_grad]
