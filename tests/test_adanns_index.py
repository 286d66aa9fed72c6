"""AdANNSIndex against literal numpy references: brute force, the IVF candidate set chosen by the
d_cluster prefix, scan on d_search + exact re-rank, OPQ+PQ asymmetric distances, the FLOPs formula, the
tuned front / budget choice, and the save/load round trip."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from hf_ada.adanns import AdANNSConfig, AdANNSIndex, choose_plan
from hf_ada.adanns.config import SEARCH_KEYS
from hf_ada.common.artifact import ArtifactError

from adanns_reference import unit

faiss.omp_set_num_threads(1)

D = 24


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((12, D))
    x = (centers[rng.integers(0, 12, 900)] + 0.6 * rng.standard_normal((900, D))).astype(np.float32)
    q = (centers[rng.integers(0, 12, 20)] + 0.6 * rng.standard_normal((20, D))).astype(np.float32)
    return x, q


def build(x: np.ndarray, **kwargs) -> AdANNSIndex:
    params = {"dim": x.shape[1], "d_cluster": 6, "d_search": 12, "nlist": 16, "nprobe": 3}
    params.update(kwargs)
    return AdANNSIndex.build(x, AdANNSConfig(**params), batch_size=128, show_progress=False)


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_full_probe_full_dim_equals_brute_force(data, metric):
    x, q = data
    index = build(x, metric=metric, nprobe=16, d_search=D)
    scores, rows = index.search_batch(q, k=10)
    if metric == "ip":
        ref_scores = unit(q) @ unit(x).T
        ref_rows = np.argsort(-ref_scores, axis=1)[:, :10]
    else:
        ref_scores = ((q[:, None, :] - x[None, :, :]) ** 2).sum(-1)
        ref_rows = np.argsort(ref_scores, axis=1)[:, :10]
    np.testing.assert_array_equal(rows, ref_rows)
    np.testing.assert_allclose(scores, np.take_along_axis(ref_scores, ref_rows, 1), rtol=1e-4, atol=1e-4)


def test_candidates_are_the_lists_chosen_by_the_d_cluster_prefix(data):
    x, q = data
    index = build(x, d_cluster=6, d_search=18, nprobe=3)
    centroids = index.centroids
    assert centroids.shape == (16, 6)
    # numpy reference: spherical assignment / probing on re-normalised 6-dim prefixes
    assigned = np.argmax(unit(x[:, :6]) @ centroids.T, axis=1)
    probed = np.argsort(-(unit(q[:, :6]) @ centroids.T), axis=1)[:, :3]
    for i, (cands, lists) in enumerate(zip(index.candidates(q), probed)):
        expected = np.flatnonzero(np.isin(assigned, lists))
        assert sorted(cands.tolist()) == expected.tolist()
        # scanning all candidates on the 18-dim prefix ranks exactly them by the prefix cosine
        scores, rows = index.search(q[i], k=len(expected), d_rerank=None)
        ref = unit(q[i : i + 1, :18]) @ unit(x[expected, :18]).T
        order = expected[np.argsort(-ref[0], kind="stable")]
        assert set(rows.tolist()) == set(expected.tolist())
        np.testing.assert_allclose(scores, np.sort(ref[0])[::-1], rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(rows[:5], order[:5])


@pytest.mark.parametrize("d_rerank", [D, 16])
def test_scan_then_exact_rerank(data, d_rerank):
    x, q = data
    index = build(x, d_cluster=6, d_search=8, nprobe=4, d_rerank=d_rerank, rerank_k=30)
    scores, rows = index.search_batch(q, k=5)
    for i in range(len(q)):
        cands = np.concatenate([index.list_rows(l) for l in index.probe(q[i : i + 1])[0]])
        scan = (unit(q[i : i + 1, :8]) @ unit(x[cands, :8]).T)[0]
        shortlist = cands[np.argsort(-scan, kind="stable")[:30]]
        exact = (unit(q[i : i + 1, :d_rerank]) @ unit(x[shortlist, :d_rerank]).T)[0]
        ref = shortlist[np.argsort(-exact, kind="stable")[:5]]
        np.testing.assert_array_equal(rows[i], ref)
        np.testing.assert_allclose(scores[i], np.sort(exact)[::-1][:5], rtol=1e-5, atol=1e-5)


def literal_pq_codes(x_rot: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    """PQ encoding by hand: per sub-space, the nearest codeword (L2)."""
    m, _, dsub = codebooks.shape
    return np.stack([np.argmin(((x_rot[:, None, i * dsub : (i + 1) * dsub] - codebooks[i][None]) ** 2).sum(-1), axis=1)
                     for i in range(m)], axis=1)


def test_opq_pq_scan_matches_numpy_adc_with_the_rotation_applied(data):
    x, q = data
    index = build(x, nlist=1, nprobe=1, pq_bytes=4, d_pq=16, train_size=900)
    assert index.storage.vectors is None  # a PQ-only index without re-rank keeps no float32 vectors
    assert index.memory()["vectors"] == 0 and index.memory()["codes"] == len(x) * 4
    rotation = index.storage.opq_rotation
    assert not np.allclose(rotation, np.eye(16), atol=1e-3)  # a real rotation was learned
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(16), atol=1e-4)
    codebooks = index.storage.pq_codebooks
    codes = index.storage.codes
    agree = (literal_pq_codes(unit(x[:, :16]) @ rotation.T, codebooks) == codes).mean()
    assert agree > 0.999  # the database rotation was applied before encoding (ties aside)
    # literal ADC: rotate the re-normalised query prefix, sum sub-space inner products with the codewords
    q_rot = unit(q[:, :16]) @ rotation.T
    ref = np.zeros((len(q), len(x)), dtype=np.float64)
    for m in range(4):
        ref += q_rot[:, 4 * m : 4 * m + 4] @ codebooks[m, codes[:, m]].T
    scores, rows = index.search_batch(q, k=10, d_rerank=None)
    np.testing.assert_allclose(scores, -np.sort(-ref, axis=1)[:, :10], rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(np.sort(rows[:, :3]), np.sort(np.argsort(-ref, axis=1)[:, :3]))


def test_cost_formula(data):
    x, _ = data
    index = build(x, d_cluster=6, d_search=12, nlist=16, nprobe=3, d_rerank=D, rerank_k=20, pq_bytes=4, d_pq=16,
                  scan="flat")
    n = len(x)
    cost = index.cost()
    assert cost["total"] == pytest.approx(16 * 6 + n * 3 / 16 * 12 + 20 * D)
    pq_cost = index.cost(scan="pq", nprobe=16, d_rerank=None)
    assert pq_cost["total"] == pytest.approx(n * 4 + 256 * 16 + 16 * 16)  # no coarse step when all lists probed
    assert index.cost(d_search=6)["total"] < cost["total"]


def test_tune_front_and_budget_choice(data):
    x, q = data
    index = build(x, d_cluster=6, d_search=12, nprobe=2)
    truth = np.argsort(-(unit(q) @ unit(x).T), axis=1)[:, :10]
    grid = [{"nprobe": p, "d_search": d, "d_rerank": None} for p in (1, 4, 16) for d in (6, 24)]
    points = index.tune(q, [set(t) for t in truth], k=10, grid=grid, show_progress=False)
    assert len(points) == len(grid)
    full = [p for p in points if p["nprobe"] == 16 and p["d_search"] == 24][0]
    assert full["recall"] == pytest.approx(1.0)
    front = index.pareto_front
    assert [p["flops"] for p in front] == sorted(p["flops"] for p in front)
    assert all(a["recall"] < b["recall"] for a, b in zip(front, front[1:]))
    for p in points:  # nothing measured dominates a front point
        assert not any(p["flops"] <= f["flops"] and p["recall"] > f["recall"] for f in front)
    budget = (front[0]["flops"] + front[-1]["flops"]) / 2
    plan = choose_plan(points, D, budget_flops=budget)
    chosen = {key: plan[key] for key in SEARCH_KEYS}
    best = max((p for p in points if p["flops"] <= budget), key=lambda p: p["recall"])
    assert index.cost(**chosen)["total"] <= budget
    assert (chosen["nprobe"], chosen["d_search"]) == (best["nprobe"], best["d_search"])
    _, rows = index.search_batch(q, k=10, budget_flops=budget)
    _, direct = index.search_batch(q, k=10, **chosen)
    np.testing.assert_array_equal(rows, direct)
    with pytest.raises(ValueError, match="budget_flops"):
        index.search_batch(q, budget_flops=1.0)


def test_budget_needs_tuning(data):
    x, q = data
    with pytest.raises(ValueError, match="tune"):
        build(x).search(q[0], budget_flops=1e9)


def test_save_load_round_trip_identical(data, tmp_path):
    x, q = data
    index = build(x, pq_bytes=4, d_pq=16, d_rerank=D, rerank_k=20)
    index.tune(q, [{0}] * len(q), grid=[{"nprobe": 2}, {"nprobe": 8}, {"scan": "pq", "nprobe": 4}],
               show_progress=False)
    before = index.search_batch(q, k=7)
    index.save_pretrained(tmp_path / "idx")
    loaded = AdANNSIndex.from_pretrained(tmp_path / "idx", expected_num_rows=len(x), expected_dim=D)
    after = loaded.search_batch(q, k=7)
    np.testing.assert_array_equal(before.total_indices, after.total_indices)
    np.testing.assert_array_equal(before.total_scores, after.total_scores)
    assert loaded.config == index.config
    assert loaded.pareto_front == index.pareto_front
    assert loaded.plan == index.plan and loaded.plan["reason"]
    card = (tmp_path / "idx" / "README.md").read_text()
    assert "d_cluster = 6" in card and "4 bytes per vector" in card and "| pq | 6 | - |" in card
    assert index.plan["reason"] in card and "## Memory" in card
    for d_search in (5, 12):  # any prefix, also one outside the stored norm ladder
        np.testing.assert_array_equal(
            index.search_batch(q, k=5, d_search=d_search).total_indices,
            loaded.search_batch(q, k=5, d_search=d_search).total_indices,
        )


def test_load_refuses_mismatches(data, tmp_path):
    x, _ = data
    build(x).save_pretrained(tmp_path / "idx")
    with pytest.raises(ValueError, match="900 rows but the dataset has 899"):
        AdANNSIndex.from_pretrained(tmp_path / "idx", expected_num_rows=899)
    with pytest.raises(ValueError, match="24-dim embeddings, the column has 32"):
        AdANNSIndex.from_pretrained(tmp_path / "idx", expected_dim=32)
    config = (tmp_path / "idx" / "config.json").read_text()
    (tmp_path / "idx" / "config.json").write_text(config.replace('"schema_version": 2', '"schema_version": 99'))
    with pytest.raises(ValueError, match="schema_version 99"):
        AdANNSIndex.from_pretrained(tmp_path / "idx")
    (tmp_path / "idx" / "config.json").write_text(config.replace('"nlist": 16', '"nlist": 8').replace('"nprobe": 3', '"nprobe": 2'))
    with pytest.raises(ArtifactError, match="lists.safetensors: 'centroids_6' is float32\\[16, 6\\], expected float32\\[8, 6\\]"):
        AdANNSIndex.from_pretrained(tmp_path / "idx")
    (tmp_path / "idx" / "config.json").write_text(config)
    (tmp_path / "idx" / "lists.safetensors").unlink()
    with pytest.raises(ArtifactError, match="lists.safetensors is missing"):
        AdANNSIndex.from_pretrained(tmp_path / "idx")


def test_failed_save_leaves_previous_index_intact(data, tmp_path, monkeypatch):
    x, q = data
    index = build(x)
    index.save_pretrained(tmp_path / "idx")
    before = {p.name: p.read_bytes() for p in (tmp_path / "idx").iterdir()}

    def broken_card(self, repo_id=None):
        raise RuntimeError("disk full")

    other = build(x, nprobe=5)
    monkeypatch.setattr(AdANNSIndex, "_render_card", broken_card)
    with pytest.raises(RuntimeError, match="disk full"):
        other.save_pretrained(tmp_path / "idx")
    assert {p.name: p.read_bytes() for p in (tmp_path / "idx").iterdir()} == before  # no staging left either


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"d_cluster": 40}, "d_cluster must be an int in \\[1, 24\\]"),
        ({"d_search": 0}, "d_search"),
        ({"nlist": 2000}, "nlist must be <= the number of rows \\(900\\)"),
        ({"nprobe": 17}, "nprobe"),
        ({"metric": "cosine"}, "metric must be one of"),
        ({"pq_bytes": 5, "d_pq": 16}, "multiple of pq_bytes"),
        ({"scan": "pq"}, "needs pq_bytes"),
    ],
)
def test_bad_build_arguments(data, kwargs, message):
    x, _ = data
    with pytest.raises(ValueError, match=message):
        params = {"dim": D, "d_cluster": 6, "d_search": 12, "nlist": 16, "nprobe": 3, "num_rows": len(x), **kwargs}
        AdANNSIndex.build(x, AdANNSConfig(**params), show_progress=False)


def test_bad_vectors_and_queries(data):
    x, q = data
    bad = x.copy()
    bad[700, 3] = np.nan
    with pytest.raises(ValueError, match="NaN.*row 700"):
        build(bad, train_size=100)
    index = build(x)
    with pytest.raises(ValueError, match="dim 20 but the index was built on 24"):
        index.search_batch(q[:, :20])
    with pytest.raises(ValueError, match="queries contains NaN"):
        index.search_batch(np.full((1, D), np.nan, dtype=np.float32))
    with pytest.raises(TypeError, match="unknown search arguments \\['d_serch'\\]; allowed: d_cluster, d_search"):
        index.search(q[0], d_serch=4)
    with pytest.raises(ValueError, match="d_search must be an int in"):
        index.search(q[0], d_search=25)
