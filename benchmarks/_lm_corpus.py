"""The language-model data of the Adan convergence benchmarks: Debian package descriptions from
``shared/data`` as documents, a byte-level BPE tokenizer trained on them, packed blocks, the GPT-2 sizes, and
the steps-to-target measure. Shared by ``bench_adan_convergence.py`` and ``bench_adan_from_adamw.py``."""

from __future__ import annotations

import hashlib
import sysconfig
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
SHARED_DATA = BENCH_DIR.parent.parent / "shared" / "data"
DEBIAN_PARQUET = SHARED_DATA / "debian-packages.parquet"

# name -> (n_embd, n_layer, n_head, vocab_size)
MODEL_SIZES: dict[str, tuple[int, int, int, int]] = {
    "tiny": (64, 2, 2, 1024),  # ~0.2M: smoke test
    "reduced": (128, 4, 2, 2048),  # ~1.1M: the default, sized for ~20-30 min on 2 busy CPU cores
    "small": (384, 6, 6, 4096),  # ~12M: the size the benchmark was specified for (hours on 2 CPU cores)
    "medium": (512, 8, 8, 8192),  # ~30M
}


def _is_eval_doc(key: str, eval_fraction: float) -> bool:
    digest = hashlib.sha1(key.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < eval_fraction


def load_documents(eval_fraction: float = 0.02) -> tuple[list[str], list[str], str]:
    """(train docs, eval docs, source description). Debian descriptions, else the stdlib's .py files."""
    if DEBIAN_PARQUET.is_file():
        import pyarrow.parquet as pq

        table = pq.read_table(DEBIAN_PARQUET, columns=["package", "synopsis", "description", "description_md5"])
        seen: set[str] = set()
        train, evals = [], []
        for package, synopsis, description, md5 in zip(*(table.column(c).to_pylist() for c in table.column_names)):
            if md5 in seen:  # identical descriptions (library + its -dev package) are one document
                continue
            seen.add(md5)
            text = f"{package}: {synopsis}\n{description}\n"
            (evals if _is_eval_doc(md5, eval_fraction) else train).append(text)
        return train, evals, f"Debian package descriptions ({DEBIAN_PARQUET.name}, {len(seen)} distinct documents)"
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    train, evals = [], []
    for path in sorted(stdlib.rglob("*.py")):
        if "site-packages" in path.parts or "test" in path.parts:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        rel = str(path.relative_to(stdlib))
        (evals if _is_eval_doc(rel, eval_fraction) else train).append(text)
    return train, evals, f"Python standard library sources ({stdlib}, {len(train) + len(evals)} files; fallback)"


def train_tokenizer(docs: list[str], vocab_size: int):
    """A byte-level BPE tokenizer (``tokenizers``) trained on ``docs``, wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )  # fmt: skip
    tok.train_from_iterator(docs, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")


def pack_blocks(tokenizer, docs: list[str], n_blocks: int, block_size: int) -> list[list[int]]:
    """Concatenate tokenized docs (separated by EOS) into ``n_blocks`` blocks of ``block_size`` tokens."""
    eos = tokenizer.eos_token_id
    blocks: list[list[int]] = []
    buffer: list[int] = []
    for start in range(0, len(docs), 512):
        for ids in tokenizer(docs[start : start + 512])["input_ids"]:
            buffer.extend(ids + [eos])
        while len(buffer) >= block_size and len(blocks) < n_blocks:
            blocks.append(buffer[:block_size])
            buffer = buffer[block_size:]
        if len(blocks) >= n_blocks:
            return blocks
    if len(blocks) < n_blocks:
        raise ValueError(
            f"not enough text for {n_blocks} blocks of {block_size} tokens (got {len(blocks)}): "
            "lower --steps / --batch-size / --block-size"
        )
    return blocks


# ------------------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------------------


def steps_to_reach(curve: list[tuple[int, float]], target: float) -> float | None:
    """First step at which the (linearly interpolated) eval curve reaches ``target``; None if never."""
    for (s0, l0), (s1, l1) in zip(curve, curve[1:]):
        if l1 <= target:
            if l0 <= target:
                return float(s0)
            return s0 + (s1 - s0) * (l0 - target) / (l0 - l1)
    return float(curve[0][0]) if curve and curve[0][1] <= target else None
