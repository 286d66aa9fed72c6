"""AdaNPC core: the vote against a literal transcription of the paper's formula, insertion, memory rules, T3A."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

import hf_ada  # noqa: F401
from hf_ada.adanpc import SOURCE, TEST, AdaNPCConfig, AdaNPCMemory, AdaNPCPredictor, T3AClassifier, knn_vote

torch.set_num_threads(1)


# ----------------------------------------------------------------------------- literal transcriptions
def literal_adanpc_vote(query, memory_feats, memory_labels, k, temperature, num_classes, metric="cosine"):
    """Zhang et al. (2023), eq. 3 / knn.py MomentumQueue.forward, written out loop by loop in numpy."""
    out = np.zeros((len(query), num_classes))
    for b, z in enumerate(query):
        sims = []
        for m in memory_feats:
            if metric == "cosine":
                sims.append(np.dot(z / np.linalg.norm(z), m / np.linalg.norm(m)))
            elif metric == "inner_product":
                sims.append(np.dot(z, m))
            else:
                sims.append(-np.sum((z - m) ** 2))
        sims = np.array(sims)
        top = np.argsort(-sims)[:k]
        denominator = sum(np.exp(sims[j] / temperature) for j in top)
        for c in range(num_classes):
            out[b, c] = sum(np.exp(sims[j] / temperature) for j in top if memory_labels[j] == c) / denominator
    return out


def literal_t3a(weight, bias, stream_batches, filter_k):
    """T3A (Iwasawa & Matsuo 2021) as in the AdaNPC repo's adapt_algorithms.T3A, but keeping all supports
    when filter_k is None (the repo's -1 slices [:-1])."""
    def head(x):
        return x @ weight.T + bias

    def ent(logits):
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        return -(p * np.log(p)).sum(1)

    supports, labels, ents = weight.copy(), head(weight).argmax(1), ent(head(weight))
    outputs = []
    for z in stream_batches:
        p = head(z)
        supports = np.vstack([supports, z])
        labels = np.concatenate([labels, p.argmax(1)])
        ents = np.concatenate([ents, ent(p)])
        if filter_k is not None:
            keep = []
            for c in range(weight.shape[0]):
                idx = [i for i in range(len(labels)) if labels[i] == c]
                idx = sorted(idx, key=lambda i: (ents[i], i))[:filter_k]
                keep += idx
            supports, labels, ents = supports[keep], labels[keep], ents[keep]
        s = supports / np.linalg.norm(supports, axis=1, keepdims=True)
        y = np.zeros((len(labels), weight.shape[0]))
        y[np.arange(len(labels)), labels] = 1
        w = s.T @ y
        w = w / np.linalg.norm(w, axis=0, keepdims=True)
        outputs.append(z @ w)
    return outputs


# ----------------------------------------------------------------------------- a tiny model for predictors
@pytest.fixture(scope="module")
def tiny_model():
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, num_labels=3, max_position_embeddings=16)
    return BertForSequenceClassification(config).eval()  # features are 8-dim (the classifier input)


def make_predictor(model, **config):
    """The paper's rule (every prediction inserted, no guard) unless ``config`` says otherwise; the guard,
    on by default, has its own tests below."""
    return AdaNPCPredictor(model, None, AdaNPCConfig.unguarded(**config))


# ----------------------------------------------------------------------------- the vote
@pytest.mark.parametrize("metric", ["cosine", "inner_product", "l2"])
@pytest.mark.parametrize("k,temperature", [(1, 0.1), (5, 0.1), (7, 1.0), (50, 0.05)])
def test_vote_matches_literal_formula(metric, k, temperature):
    rng = np.random.default_rng(k)
    feats = (0.3 * rng.normal(size=(40, 6))).astype(np.float32)  # keeps exp(sim / T) finite in the literal
    labels = rng.integers(0, 4, size=40)
    queries = (0.3 * rng.normal(size=(9, 6))).astype(np.float32)
    memory = AdaNPCMemory(6, metric)
    memory.add(feats, labels, origin=SOURCE)
    sims, neighbour_labels, _ = memory.search(queries, k)
    got = knn_vote(sims, neighbour_labels, 4, temperature)
    want = literal_adanpc_vote(queries, feats, labels, min(k, 40), temperature, 4, metric)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(got.sum(1), 1.0, rtol=1e-5)


def test_predictor_vote_is_the_formula_on_model_features(tiny_model):
    rng = np.random.default_rng(1)
    predictor = make_predictor(tiny_model, k=4, temperature=0.2)
    feats = rng.normal(size=(30, 8)).astype(np.float32)
    labels = rng.integers(0, 3, size=30)
    predictor.add_source(feats, labels)
    queries = rng.normal(size=(5, 8)).astype(np.float32)
    np.testing.assert_allclose(predictor.vote(queries), literal_adanpc_vote(queries, feats, labels, 4, 0.2, 3),
                               rtol=2e-4, atol=2e-5)


# ----------------------------------------------------------------------------- insertion
def two_class_source(predictor):
    feats = np.zeros((2, 8), dtype=np.float32)
    feats[0, 0] = 1.0  # class 0 along e0
    feats[1, 1] = 1.0  # class 1 along e1
    predictor.add_source(feats, [0, 1])


def direction(angle_deg):
    v = np.zeros((1, 8), dtype=np.float32)
    v[0, 0], v[0, 1] = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))
    return v


def test_inserted_entries_change_later_predictions(tiny_model):
    predictor = make_predictor(tiny_model, k=1)
    two_class_source(predictor)
    # 60 deg is nearer e1: predicted 1 and inserted with label 1
    assert predictor.predict_features(direction(60)).argmax() == 1
    assert predictor.memory.num_test == 1 and predictor.memory.labels[-1] == 1
    # 40 deg: nearer e0 than e1, but nearer the inserted 60 deg entry -> now class 1
    assert predictor.predict_features(direction(40), adapt=False).argmax() == 1
    frozen = make_predictor(tiny_model, k=1, insert="none")
    two_class_source(frozen)
    frozen.predict_features(direction(60))
    assert frozen.memory.num_test == 0
    assert frozen.predict_features(direction(40)).argmax() == 0
    predictor.reset()
    assert predictor.memory.num_test == 0 and len(predictor.memory) == 2
    assert predictor.predict_features(direction(40), adapt=False).argmax() == 0


def test_batch_members_do_not_see_each_other_but_a_stream_does(tiny_model):
    batch = np.vstack([direction(60), direction(40)])
    batched = make_predictor(tiny_model, k=1)
    two_class_source(batched)
    assert batched.predict_features(batch).argmax(1).tolist() == [1, 0]
    assert batched.memory.labels[-2:].tolist() == [1, 0]  # inserted in batch order
    streamed = make_predictor(tiny_model, k=1)
    two_class_source(streamed)
    assert [streamed.predict_features(x[None]).argmax() for x in batch] == [1, 1]


def test_confident_insertion_uses_the_vote_probability(tiny_model):
    # k=2 with both source entries: a query at 47 deg gets a split vote (max < 0.9) -> not inserted;
    # a query at 89 deg is near-certain -> inserted.
    predictor = make_predictor(tiny_model, k=2, temperature=0.1, insert="confident", confidence_threshold=0.9)
    two_class_source(predictor)
    probs = predictor.predict_features(direction(47))
    assert probs.max() < 0.9 and predictor.memory.num_test == 0
    probs = predictor.predict_features(direction(89))
    assert probs.max() >= 0.9 and predictor.memory.num_test == 1


# ----------------------------------------------------------------------------- capacity and eviction
def by_age(memory, values, mask=None):
    """``values`` of the entries selected by ``mask``, oldest first (evicted slots are reused in place, so
    positions are not insertion order; ``memory.order`` is)."""
    mask = np.ones(len(memory), dtype=bool) if mask is None else mask
    return np.asarray(values)[mask][np.argsort(memory.order[mask])].tolist()


def test_eviction_drops_oldest_test_entries_and_keeps_source():
    memory = AdaNPCMemory(2, "l2", capacity=5)
    memory.add(np.ones((3, 2)), [0, 1, 2], origin=SOURCE)
    memory.add(np.full((2, 2), 2.0), [5, 6], origin=TEST)  # fills the memory
    memory.add(np.full((1, 2), 3.0), [7], origin=TEST)  # evicts test label 5
    assert len(memory) == 5 and memory.num_source == 3
    assert sorted(memory.labels[memory.origin == TEST].tolist()) == [6, 7]
    memory.add(np.full((4, 2), 4.0), [8, 9, 10, 11], origin=TEST)  # only 2 fit: the newest two
    assert by_age(memory, memory.labels, memory.origin == SOURCE) == [0, 1, 2]
    assert by_age(memory, memory.labels, memory.origin == TEST) == [10, 11]
    # the faiss index follows the arrays
    _, labels, positions = memory.search(np.full((1, 2), 4.0), 5)
    assert set(labels[0].tolist()) == {0, 1, 2, 10, 11}
    assert np.array_equal(memory.labels[positions[0]], labels[0])
    with pytest.raises(ValueError, match="capacity"):
        memory.add(np.ones((3, 2)), [0, 0, 0], origin=SOURCE)


def test_evict_source_when_asked_goes_oldest_first_after_test_entries():
    memory = AdaNPCMemory(2, "l2", capacity=3, evict_source=True)
    memory.add(np.ones((2, 2)), [0, 1], origin=SOURCE)
    memory.add(np.ones((1, 2)), [2], origin=TEST)
    memory.add(np.ones((1, 2)), [3], origin=TEST)  # evicts test 2, not a source entry
    assert by_age(memory, memory.labels) == [0, 1, 3]
    memory.add(np.ones((2, 2)), [4, 5], origin=TEST)  # evicts test 3, then the oldest source (0)
    assert by_age(memory, memory.labels) == [1, 4, 5]
    assert by_age(memory, memory.origin) == [SOURCE, TEST, TEST]
    memory.reset()
    assert memory.labels.tolist() == [1]


def test_memory_starts_empty_and_empty_memory_is_a_clear_error(tiny_model):
    predictor = make_predictor(tiny_model)
    assert len(predictor.memory) == 0  # no random placeholder entry
    with pytest.raises(ValueError, match="memory is empty"):
        predictor.vote(np.ones((1, 8), dtype=np.float32))


def test_bad_inputs_raise_clear_errors(tiny_model):
    predictor = make_predictor(tiny_model)
    with pytest.raises(ValueError, match="feature dim"):
        predictor.add_source(np.ones((2, 5)), [0, 1])
    with pytest.raises(ValueError, match="outside the model's id2label"):
        predictor.add_source(np.ones((2, 8)), [0, 3])
    with pytest.raises(ValueError, match="not in the model's id2label"):
        predictor.add_source(np.ones((1, 8)), ["no-such-label"])
    assert len(predictor.memory) == 0  # nothing half-inserted
    with pytest.raises(ValueError, match="does not match the model's feature dim 8"):
        AdaNPCPredictor(tiny_model, None, AdaNPCConfig(), AdaNPCMemory(5))
    memory = AdaNPCMemory(8)
    memory.add(np.ones((1, 8)), [7], origin=SOURCE)
    with pytest.raises(ValueError, match="outside the model's id2label"):
        AdaNPCPredictor(tiny_model, None, AdaNPCConfig(), memory)
    with pytest.raises(ValueError, match="metric"):
        AdaNPCPredictor(tiny_model, None, AdaNPCConfig(metric="l2"), AdaNPCMemory(8, "cosine"))


# ----------------------------------------------------------------------------- config
def test_config_round_trips_json_and_validates(tmp_path, caplog):
    config = AdaNPCConfig(k=7, temperature=0.5, metric="l2", capacity=100, insert="confident",
                          confidence_threshold=0.8, evict_source=True, feature_layer="bert.pooler:output")
    assert AdaNPCConfig.from_json_string(config.to_json_string()) == config
    config.save_json(tmp_path / "adanpc_config.json")
    assert AdaNPCConfig.load_json(tmp_path / "adanpc_config.json") == config
    for bad, field in [({"k": 0}, "k"), ({"metric": "dot"}, "metric"), ({"insert": "some"}, "insert"),
                       ({"temperature": 0}, "temperature"), ({"confidence_threshold": 1.5}, "confidence_threshold"),
                       ({"capacity": 0}, "capacity")]:
        with pytest.raises(ValueError, match=f"AdaNPCConfig.{field}"):
            AdaNPCConfig(**bad)
    # a key a newer minor version adds is tolerated with a warning (like peft's configs), the rest is kept
    with caplog.at_level(logging.WARNING, logger="hf_ada.common.config"):
        assert AdaNPCConfig.from_dict({**config.to_dict(), "beta": 0.1}) == config
    assert "ignoring keys" in caplog.text and "beta" in caplog.text
    with pytest.raises(ValueError, match="schema_version"):
        AdaNPCConfig.from_dict({**config.to_dict(), "schema_version": 99})
    payload = json.loads(config.to_json_string())
    assert payload["schema_version"] == 1


# ----------------------------------------------------------------------------- T3A
@pytest.mark.parametrize("filter_k", [None, 1, 3])
def test_t3a_matches_literal_transcription(filter_k):
    rng = np.random.default_rng(3)
    weight, bias = rng.normal(size=(4, 5)), rng.normal(size=4)
    batches = [rng.normal(size=(6, 5)) for _ in range(4)]
    t3a = T3AClassifier(weight, bias, filter_k=filter_k)
    got = [t3a(b) for b in batches]
    for g, w in zip(got, literal_t3a(weight, bias, batches, filter_k)):
        np.testing.assert_allclose(g, w, rtol=1e-10)


def test_t3a_keeps_every_support_when_asked():
    rng = np.random.default_rng(4)
    weight = rng.normal(size=(3, 5))
    t3a = T3AClassifier(weight, None, filter_k=None)
    for _ in range(3):
        t3a(rng.normal(size=(4, 5)))
    assert len(t3a.supports) == 3 + 12  # the reference's -1 would drop one per class
    t3a.reset()
    assert len(t3a.supports) == 3


def test_t3a_from_model_uses_the_head(tiny_model):
    t3a = T3AClassifier.from_model(tiny_model)
    np.testing.assert_array_equal(t3a.weight, tiny_model.classifier.weight.detach().numpy())
    z = np.random.default_rng(0).normal(size=(2, 8))
    np.testing.assert_allclose(t3a.head(z), tiny_model.classifier(torch.tensor(z, dtype=torch.float32)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- features
def test_feature_hook_default_and_feature_layer(tiny_model):
    from hf_ada.adanpc.features import FeatureHook

    inputs = {"input_ids": torch.tensor([[1, 5, 7, 2], [1, 9, 2, 0]]),
              "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])}
    with torch.no_grad():
        out = tiny_model(**inputs, output_hidden_states=True)
        pooled = tiny_model.bert.pooler(out.hidden_states[-1])
    head = FeatureHook(tiny_model)
    feats, logits = head.run(inputs)
    head.remove()
    assert head.module_name == "classifier" and head.static_dim == 8
    np.testing.assert_allclose(feats, pooled.numpy(), rtol=1e-5, atol=1e-6)  # dropout is off in eval
    np.testing.assert_allclose(logits.numpy(), out.logits.numpy(), rtol=1e-5, atol=1e-6)
    # a 3-D output is reduced to its first (CLS) position
    encoder = FeatureHook(tiny_model, "bert.encoder:output")
    feats, _ = encoder.run(inputs)
    encoder.remove()
    np.testing.assert_allclose(feats, out.hidden_states[-1][:, 0].numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="not a module"):
        FeatureHook(tiny_model, "bert.nope")
    with pytest.raises(ValueError, match="suffix"):
        FeatureHook(tiny_model, "bert.pooler:middle")
