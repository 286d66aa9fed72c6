"""The collapse guard and the O(1) bounded memory, each against a literal transcription written in the test."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import hf_ada  # noqa: F401
from hf_ada.adanpc import SOURCE, TEST, AdaNPCConfig, AdaNPCMemory, AdaNPCPredictor
from hf_ada.adanpc.guard import calibrate_threshold, histogram_entropy

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_model():
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, num_labels=3, max_position_embeddings=16)
    return BertForSequenceClassification(config).eval()


# ----------------------------------------------------------------------------- literal transcriptions
def literal_vote(z, feats, labels, k, temperature, num_classes):
    sims = [float(np.dot(z / np.linalg.norm(z), m / np.linalg.norm(m))) for m in feats]
    top = sorted(range(len(sims)), key=lambda j: -sims[j])[:k]
    den = sum(math.exp(sims[j] / temperature) for j in top)
    return [sum(math.exp(sims[j] / temperature) for j in top if labels[j] == c) / den for c in range(num_classes)]


def literal_threshold(feats, labels, k, temperature, num_classes, quantile):
    """Leave-one-out: every source entry votes with the k nearest of the others; the quantile of the max."""
    conf = []
    for i in range(len(feats)):
        others = [j for j in range(len(feats)) if j != i]
        conf.append(max(literal_vote(feats[i], feats[others], labels[others], k, temperature, num_classes)))
    return float(np.quantile(conf, quantile))


class LiteralMemory:
    """Entries as a list of dicts; the eviction rules of AdaNPCMemory written out one by one."""

    def __init__(self, capacity=None):
        self.entries, self.capacity, self.next = [], capacity, 0

    def add(self, labels, origin, quota=None):
        before = list(self.entries)  # victims are older than the batch
        for label in labels:
            if origin == TEST and quota is not None and sum(
                    e["label"] == label and e["origin"] == TEST for e in self.entries) >= quota.get(label, 0):
                old = [e for e in before if e in self.entries and e["origin"] == TEST and e["label"] == label]
                if not old:
                    continue
                self.entries.remove(min(old, key=lambda e: e["order"]))
            elif self.capacity is not None and len(self.entries) >= self.capacity:
                old = [e for e in before if e in self.entries and e["origin"] == TEST]
                self.entries.remove(min(old, key=lambda e: e["order"]))
            self.entries.append({"label": int(label), "origin": origin, "order": self.next})
            self.next += 1

    def state(self):
        return sorted((e["order"], e["label"], e["origin"]) for e in self.entries)


# ----------------------------------------------------------------------------- calibration and insertion
def test_calibrated_threshold_is_the_leave_one_out_quantile():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(40, 5)).astype(np.float32)
    labels = rng.integers(0, 3, size=40)
    memory = AdaNPCMemory(5)
    memory.add(feats, labels, origin=SOURCE)
    for k, t, q in ((3, 0.1, 0.1), (5, 0.5, 0.3), (1, 0.2, 0.5)):
        got = calibrate_threshold(memory, k, t, 3, q)
        assert got == pytest.approx(literal_threshold(feats, labels, k, t, 3, q), abs=1e-5)
    # test entries are not part of the calibration
    memory.add(rng.normal(size=(10, 5)), np.zeros(10, dtype=int), origin=TEST)
    assert calibrate_threshold(memory, 3, 0.1, 3, 0.1) == pytest.approx(literal_threshold(feats, labels, 3, 0.1, 3, 0.1),
                                                                        abs=1e-5)


def test_confident_insertion_does_something_and_follows_the_literal_rule(tiny_model):
    rng = np.random.default_rng(1)
    centers = np.eye(8, dtype=np.float32)[:3] * 3
    src_labels = np.repeat(np.arange(3), 10)
    src = centers[src_labels] + rng.normal(scale=0.8, size=(30, 8)).astype(np.float32)
    predictor = AdaNPCPredictor(tiny_model, None, AdaNPCConfig(
        k=5, insert="confident", agreement=True, class_balance=False, collapse_window=None, blend_t3a=False,
        reach_quantile=None))  # the vote itself is returned, for every batch
    assert predictor.config.confidence_threshold is None
    predictor.add_source(src, src_labels)
    threshold = predictor.confidence_threshold()
    assert threshold == pytest.approx(literal_threshold(src, src_labels, 5, 0.1, 3, 0.1), abs=1e-5)
    assert 0.0 < threshold <= 1.0  # calibrated, not 0.0 (which would insert everything)
    queries = rng.normal(scale=1.5, size=(24, 8)).astype(np.float32) + centers[rng.integers(0, 3, 24)]
    head = predictor.head_logits(queries).argmax(1)
    probs = predictor.predict_features(queries)
    # literal rule: inserted iff max prob >= threshold and the vote agrees with the head
    want = [(int(np.argmax(p)), q) for p, q, h in zip(probs, queries, head) if max(p) >= threshold and np.argmax(p) == h]
    test = predictor.memory.origin == TEST
    assert predictor.memory.labels[test].tolist() == [label for label, _ in want]
    np.testing.assert_allclose(predictor.memory.features[test],
                               [q / np.linalg.norm(q) for _, q in want], rtol=1e-5, atol=1e-6)
    assert 0 < len(want) < len(queries)  # some inserted, some not
    assert predictor.guard.inserted == len(want) and predictor.guard.rejected == len(queries) - len(want)
    # more source data: the threshold is calibrated again
    predictor.add_source(src[:3], src_labels[:3])
    assert predictor.guard.threshold is None


# ----------------------------------------------------------------------------- the bounded memory
@pytest.mark.parametrize("capacity,quota", [(30, None), (None, {0: 4, 1: 2, 2: 6}), (25, {0: 5, 1: 5, 2: 5})])
def test_eviction_and_class_quota_match_the_literal_rules(capacity, quota):
    rng = np.random.default_rng(2)
    memory, literal = AdaNPCMemory(4, "l2", capacity=capacity), LiteralMemory(capacity)
    labels = rng.integers(0, 3, size=12)
    memory.add(rng.normal(size=(12, 4)), labels, origin=SOURCE)
    literal.add(labels, SOURCE)
    for _ in range(40):
        n = int(rng.integers(1, 6))
        feats, labels = rng.normal(size=(n, 4)).astype(np.float32), rng.integers(0, 3, size=n)
        memory.add(feats, labels, origin=TEST, class_quota=quota)
        literal.add(labels, TEST, quota)
        got = sorted(zip(memory.order.tolist(), memory.labels.tolist(), memory.origin.tolist()))
        assert got == literal.state()
        assert memory.num_test == sum(o == TEST for *_, o in got)
    # the faiss index (slots overwritten in place) answers exactly like a brute-force search of the arrays
    queries = rng.normal(size=(5, 4)).astype(np.float32)
    sims, _, positions = memory.search(queries, 7)
    brute = -((queries[:, None, :] - memory.features[None]) ** 2).sum(-1)
    np.testing.assert_allclose(sims, np.sort(brute, axis=1)[:, ::-1][:, :7], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.take_along_axis(brute, positions, 1), sims, rtol=1e-4, atol=1e-4)
    # copy and reset rebuild the same content
    assert sorted(memory.copy().order.tolist()) == sorted(memory.order.tolist())
    memory.reset()
    assert memory.num_test == 0 and memory.num_source == 12


# ----------------------------------------------------------------------------- collapse monitor and episodic mode
def test_histogram_entropy_is_the_literal_formula():
    preds = [0, 0, 1, 2, 2, 2]
    want = -sum((c / 6) * math.log(c / 6) for c in (2, 1, 3))
    assert histogram_entropy(preds, 4) == pytest.approx(want)


def test_collapse_monitor_steps_in_with_the_head_and_reset_restores(tiny_model):
    rng = np.random.default_rng(3)
    config = AdaNPCConfig.unguarded(k=3, collapse_window=16, collapse_ratio=0.8)
    predictor = AdaNPCPredictor(tiny_model, None, config)
    src = rng.normal(size=(30, 8)).astype(np.float32)
    predictor.add_source(src, np.zeros(30, dtype=int))  # the vote can only say class 0: a collapsed vote
    queries = rng.normal(size=(16, 8)).astype(np.float32)
    logits = rng.normal(size=(16, 3)).astype(np.float32) * 3
    logits[np.arange(16), np.arange(16) % 3] += 10  # the head spreads over all classes
    probs = predictor.predict_features(queries[:8], logits=logits[:8])
    assert (probs.argmax(1) == 0).all() and not predictor.guard.stepped_in  # window not full yet
    predictor.predict_features(queries[8:], logits=logits[8:])
    assert predictor.guard.stepped_in and predictor.guard.collapses == 1
    assert predictor.memory.num_test == 0  # test entries forgotten
    # from now on the head answers (its softmax) and nothing is inserted
    got = predictor.predict_features(queries[:4], logits=logits[:4])
    e = np.exp(logits[:4] - logits[:4].max(1, keepdims=True))
    np.testing.assert_allclose(got, e / e.sum(1, keepdims=True), rtol=1e-5)
    assert predictor.memory.num_test == 0
    predictor.reset()
    assert not predictor.guard.stepped_in
    assert (predictor.predict_features(queries[:4], logits=logits[:4]).argmax(1) == 0).all()
    # a label shift (head and vote narrow together) does not trigger it
    same = AdaNPCPredictor(tiny_model, None, config)
    same.add_source(src, np.zeros(30, dtype=int))
    head_also_0 = np.zeros((16, 3), dtype=np.float32)
    head_also_0[:, 0] = 5
    same.predict_features(queries, logits=head_also_0)
    assert not same.guard.stepped_in and same.memory.num_test == 16


def test_default_answer_is_the_mean_of_the_vote_and_t3a_and_the_vote_alone_decides_insertion(tiny_model):
    rng = np.random.default_rng(6)
    centers = np.eye(8, dtype=np.float32)[:3] * 3
    src_labels = np.repeat(np.arange(3), 10)
    src = centers[src_labels] + rng.normal(scale=0.8, size=(30, 8)).astype(np.float32)
    # within the memory's reach (the gate off here; its own tests are in test_adanpc_reach.py)
    blended = AdaNPCPredictor(tiny_model, None, AdaNPCConfig(k=5, reach_quantile=None))
    assert blended.config.blend_t3a and not AdaNPCConfig.unguarded().blend_t3a
    vote_only = AdaNPCPredictor(tiny_model, None, AdaNPCConfig(k=5, blend_t3a=False, reach_quantile=None))
    t3a = AdaNPCPredictor(tiny_model, None, AdaNPCConfig(method="t3a"))
    for predictor in (blended, vote_only):
        predictor.add_source(src, src_labels)
    for _ in range(4):  # each on its own state, fed the same stream
        batch = (centers[rng.integers(0, 3, 8)] + rng.normal(scale=1.5, size=(8, 8))).astype(np.float32)
        got, vote, t3a_probs = (p.predict_features(batch) for p in (blended, vote_only, t3a))
        np.testing.assert_allclose(got, (vote + t3a_probs) / 2, rtol=1e-6, atol=1e-7)
        assert not np.allclose(got, vote)  # T3A does take part
    test = blended.memory.origin == TEST
    assert test.sum() > 0
    np.testing.assert_array_equal(blended.memory.labels[test], vote_only.memory.labels[vote_only.memory.origin == TEST])


def test_blending_needs_the_head_input_as_the_feature(tiny_model, caplog):
    with caplog.at_level("WARNING", logger="hf_ada.adanpc.predictor"):
        predictor = AdaNPCPredictor(tiny_model, None, AdaNPCConfig(k=2, feature_layer="classifier"))
    assert predictor.t3a is None and "blend_t3a needs the classification head's input" in caplog.text
    predictor.add_source(np.eye(8, dtype=np.float32)[:3], [0, 1, 2])
    vote_only = AdaNPCPredictor(tiny_model, None, AdaNPCConfig(k=2, blend_t3a=False))
    vote_only.add_source(np.eye(8, dtype=np.float32)[:3], [0, 1, 2])
    q = np.random.default_rng(7).normal(size=(4, 8)).astype(np.float32)
    np.testing.assert_array_equal(predictor.predict_features(q, adapt=False), vote_only.predict_features(q, adapt=False))


def test_episodic_mode_resets_every_n_inputs(tiny_model):
    rng = np.random.default_rng(4)
    predictor = AdaNPCPredictor(tiny_model, None, AdaNPCConfig.unguarded(k=2, reset_every=8))
    predictor.add_source(rng.normal(size=(6, 8)), [0, 1, 2, 0, 1, 2])
    counts = []
    for _ in range(5):
        predictor.predict_features(rng.normal(size=(4, 8)).astype(np.float32))
        counts.append(predictor.memory.num_test)
    assert counts == [4, 8, 4, 8, 4]


def test_guard_state_and_episodic_settings_survive_save_and_load(tmp_path, tiny_model):
    from transformers import AutoTokenizer  # noqa: F401  (the predictor has no processor here)

    rng = np.random.default_rng(5)
    config = AdaNPCConfig(k=3, collapse_window=16, reset_every=64, insert="confident")
    predictor = AdaNPCPredictor(tiny_model, None, config)
    predictor.add_source(rng.normal(size=(20, 8)), rng.integers(0, 3, 20))
    predictor.predict_features(rng.normal(size=(10, 8)).astype(np.float32))
    predictor.guard.step_in()
    folder = predictor.save_pretrained(tmp_path / "p")
    loaded = AdaNPCPredictor.from_pretrained(folder)
    assert loaded.config == config
    assert loaded.guard.to_dict() == predictor.guard.to_dict()
    assert loaded.guard.threshold is not None and loaded.guard.reach is not None and loaded.guard.stepped_in
    q = rng.normal(size=(6, 8)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict_features(q), predictor.predict_features(q))
    loaded.reset()
    assert not loaded.guard.stepped_in and loaded.memory.num_test == 0
