"""The reach gate: who answers a batch (the vote or T3A), on real data (sklearn's digits, a fitted linear head)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_ada.adanpc import AdaNPCConfig, AdaNPCPredictor
from hf_ada.adanpc.guard import calibrate_reach, within_reach
from hf_ada.adanpc.memory import TEST

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits():
    """Training / held-out digits (pixels in [0, 1]) and a transformers classifier whose head is a logistic
    regression fitted on the training pixels: the pixels are the features entering that head."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from transformers import BertConfig, BertForSequenceClassification

    data = load_digits()
    x = (data.images.reshape(len(data.target), -1) / 16.0).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(x))
    train, test = order[:900], order[900:1284]
    head = LogisticRegression(C=0.1, max_iter=1000).fit(x[train], data.target[train])
    torch.manual_seed(0)
    config = BertConfig(vocab_size=8, hidden_size=64, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8,
                        max_position_embeddings=8, num_labels=10)
    model = BertForSequenceClassification(config).eval()
    with torch.no_grad():
        model.classifier.weight.copy_(torch.from_numpy(head.coef_))
        model.classifier.bias.copy_(torch.from_numpy(head.intercept_))
    return model, x[train], data.target[train], x[test], data.target[test]


def stream(predictor, features, batch=32):
    return np.concatenate([predictor.predict_features(features[i : i + batch]) for i in range(0, len(features), batch)])


def literal_reach(features, quantile):
    """Transcription: each training entry's cosine similarity to its nearest other entry; the quantile."""
    z = features / np.linalg.norm(features, axis=1, keepdims=True)
    sims = z @ z.T
    np.fill_diagonal(sims, -np.inf)
    return np.quantile(sims.max(axis=1), quantile)


def test_reach_is_the_quantile_of_the_leave_one_out_nearest_similarity(digits):
    model, x, y, _, _ = digits
    predictor = AdaNPCPredictor(model, None, AdaNPCConfig(reach_quantile=0.05))
    predictor.add_source(x, y)
    assert predictor.reach() == pytest.approx(literal_reach(x, 0.05), abs=1e-5)
    assert calibrate_reach(predictor.memory, 0.01) == pytest.approx(literal_reach(x, 0.01), abs=1e-5)
    assert within_reach(np.array([0.9, 0.9, 0.1]), 0.5) and not within_reach(np.array([0.9, 0.1, 0.1]), 0.5)
    assert AdaNPCConfig.unguarded().reach_quantile is None and within_reach(np.array([-1.0]), None)


def test_abrupt_severe_shift_is_answered_by_t3a_and_nothing_is_inserted(digits):
    model, x, y, xt, yt = digits
    noisy = np.clip(xt + np.random.default_rng(1).normal(scale=0.8, size=xt.shape), 0, 1).astype(np.float32)
    gated = AdaNPCPredictor(model, None, AdaNPCConfig())
    gated.add_source(x, y)
    t3a = AdaNPCPredictor(model, None, AdaNPCConfig(method="t3a"))
    np.testing.assert_allclose(stream(gated, noisy), stream(t3a, noisy), rtol=1e-6)  # T3A's answer exactly
    assert gated.guard.answered_t3a == len(noisy) and gated.guard.answered_vote == 0
    assert gated.memory.num_test == 0  # the memory never learnt from inputs it cannot label
    paper = AdaNPCPredictor(model, None, AdaNPCConfig.unguarded())  # the paper's rule: inserts everything
    paper.add_source(x, y)
    stream(paper, noisy)
    assert paper.memory.num_test == len(noisy)


def test_held_out_digits_are_answered_by_the_vote_and_inserted(digits):
    model, x, y, xt, yt = digits
    gated = AdaNPCPredictor(model, None, AdaNPCConfig())
    gated.add_source(x, y)
    vote = AdaNPCPredictor(model, None, AdaNPCConfig(reach_quantile=None))  # the same rule without the gate
    vote.add_source(x, y)
    got = stream(gated, xt)
    np.testing.assert_allclose(got, stream(vote, xt), rtol=1e-6)
    assert gated.guard.answered_vote == len(xt) and gated.guard.answered_t3a == 0
    assert gated.memory.num_test > len(xt) // 2  # inserted (class balance may replace some)
    assert (got.argmax(1) == yt).mean() > 0.9
    assert (gated.memory.origin == TEST).sum() == gated.memory.num_test
