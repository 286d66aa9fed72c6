"""The plan choice's measuring machinery against literal transcriptions on small data: the standard error of
recall@k, the fine nprobe / efSearch ladders walked around the recall/time front (every refined plan's recall
checked against brute-force search), the contenders re-timed side by side, and a loaded index answering a
recall target from its saved fronts like the tuned one."""

from __future__ import annotations

import math

import faiss
import numpy as np
import pytest

from hf_ada.adanns import AdANNSConfig, AdANNSIndex, choose_plan
from hf_ada.adanns.config import SEARCH_KEYS
from hf_ada.adanns.tuning import (
    EF_LADDER,
    NPROBE_LADDER,
    NPROBES,
    SIMPLER_PLAN_MARGIN,
    is_full_dim_structure,
    near_front,
    pareto_front,
    refine_grid,
    retime_front,
    retrieval_metrics,
)

from adanns_reference import chosen_qps, unit

faiss.omp_set_num_threads(1)
D = 32


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    """1,200 clustered rows whose energy decays along the dims (Matryoshka-like) and 80 queries."""
    gen = np.random.default_rng(5)
    scale = np.linspace(2.0, 0.3, D)
    centers = gen.standard_normal((24, D)) * scale

    def draw(n: int) -> np.ndarray:
        return (centers[gen.integers(0, 24, n)] + 0.9 * gen.standard_normal((n, D)) * scale).astype(np.float32)

    return draw(1200), draw(80)


def exact_top(q: np.ndarray, x: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-(unit(q) @ unit(x).T), axis=1, kind="stable")[:, :k]


def test_recall_standard_error_is_the_literal_one():
    rows = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8], [0, 9, 9]])
    relevant = [{0, 1}, {4, 10}, {11, 12}, {0}]
    per_query = [1.0, 0.5, 0.0, 1.0]
    m = retrieval_metrics(rows, relevant, k=3)
    mean = sum(per_query) / 4
    literal_sd = math.sqrt(sum((r - mean) ** 2 for r in per_query) / 3)  # sample standard deviation
    assert m["recall"] == pytest.approx(mean)
    assert m["recall_se"] == pytest.approx(literal_sd / math.sqrt(4))
    assert retrieval_metrics(rows[:1], relevant[:1], k=3)["recall_se"] == 0.0  # one query: no spread to measure


def _p(scan: str, recall: float, ms: float, **settings) -> dict:
    base = {"d_cluster": 8, "d_search": 16, "nprobe": 4, "d_rerank": None, "rerank_k": 50, "scan": scan,
            "ef_search": 64}
    return {**base, **settings, "recall": recall, "ms": ms, "qps": 1000.0 / ms, "flops": ms, "mrr": recall}


def test_refine_grid_literal():
    ivf = _p("flat", 0.70, 1.0, nprobe=4)
    ivf_slow = _p("flat", 0.65, 5.0, nprobe=8, d_search=8)  # dominated: off the front, not refined
    graph = _p("hnsw", 0.90, 2.0, ef_search=32, d_search=16)
    reranked = _p("hnsw", 0.95, 3.0, ef_search=50, d_search=8, d_rerank=32, rerank_k=50)
    top = _p("flat", 0.99, 4.0, nprobe=16, d_cluster=32, d_search=32)
    measured_5 = _p("flat", 0.72, 1.5, nprobe=5)  # the step above nprobe 4, already measured
    points = [ivf, ivf_slow, graph, reranked, top, measured_5]
    assert ivf_slow not in pareto_front(points, cost="ms")
    extra = refine_grid(points, nlist=20)

    def key(p):
        return (p["scan"], p["d_search"], p["d_cluster"], p["nprobe"], p["ef_search"], p["d_rerank"], p["rerank_k"])

    settings = {key(p) for p in extra}
    literal = {("flat", 16, 8, 3, 64, None, 50),  # nprobe 4 -> 3 (5 is measured)
               ("flat", 16, 8, 6, 64, None, 50),  # nprobe 5 -> 6 (4 is measured)
               ("hnsw", 16, 8, 4, 28, None, 50), ("hnsw", 16, 8, 4, 36, None, 50),  # efSearch 32 -> 28, 36
               ("hnsw", 8, 8, 4, 56, 32, 50),  # re-ranked top 50: efSearch from 50 up, so only 56 (none below 50)
               ("hnsw", 8, 8, 4, 50, 32, 40),  # ... and its re-rank depth 50 -> 40 (no deeper: a walk of 50 rows)
               ("flat", 32, 32, 14, 64, None, 50), ("flat", 32, 32, 18, 64, None, 50)}  # nprobe 16 -> 14, 18
    assert settings == literal
    assert all(set(p) == set(SEARCH_KEYS) for p in extra)
    assert refine_grid(points + [{**p, "recall": 0.0, "ms": 99.0, "qps": 1.0, "flops": 1.0, "mrr": 0.0}
                                 for p in extra], nlist=20) == []  # everything asked for is measured now
    assert [v for v in NPROBE_LADDER if v in NPROBES] == list(NPROBES)  # the first pass is on the ladder
    assert list(EF_LADDER) == sorted(EF_LADDER) and list(NPROBE_LADDER) == sorted(NPROBE_LADDER)


def test_a_re_rank_plan_must_beat_the_fastest_one_pass_plan_by_more_than_timing_noise():
    one_pass = _p("flat", 0.80, 1.0, nprobe=4)  # 1000 q/s
    slower = _p("flat", 0.85, 1.2, nprobe=6)
    re_rank = _p("flat", 0.81, 1.0 / 1.04, nprobe=8, d_search=8, d_rerank=32)  # 4% faster: within the noise
    clear = _p("flat", 0.82, 1.0 / 1.10, nprobe=8, d_search=8, d_rerank=32, rerank_k=40)  # 10% faster
    assert SIMPLER_PLAN_MARGIN == 1.05
    assert choose_plan([one_pass, slower, re_rank], 32, target_recall=0.8)["nprobe"] == 4
    assert choose_plan([one_pass, slower, re_rank, clear], 32, target_recall=0.8)["rerank_k"] == 40
    assert choose_plan([one_pass, slower, re_rank], 32, target_recall=0.805)["d_rerank"] == 32  # none other reaches
    # a one-pass plan reaching the target only more slowly than the margin leaves the re-rank plan chosen
    assert choose_plan([slower, re_rank], 32, target_recall=0.8)["d_rerank"] == 32


def test_a_plan_on_prefixes_must_beat_faiss_s_full_dim_structure_by_more_than_timing_noise():
    """The rigid IVF (quantizer and scan on all 32 dims), the full-dim graph and exact flat win within 1.05x of
    a faster plan on prefixes; a prefix plan clearly faster (or the only one reaching the target) wins."""
    rigid = _p("flat", 0.80, 1.0, d_cluster=32, d_search=32, nprobe=4)  # 1000 q/s
    prefix_plan = _p("flat", 0.81, 1.0 / 1.04, d_cluster=8, d_search=16, nprobe=6)  # 4% faster
    graph = _p("hnsw", 0.82, 1.0 / 1.03, d_search=32, ef_search=16)  # the full-dim graph, 3% faster
    clear = _p("flat", 0.80, 1.0 / 1.2, d_cluster=8, d_search=8, nprobe=8)  # 20% faster
    assert is_full_dim_structure(rigid, 32) and is_full_dim_structure(graph, 32)
    assert not is_full_dim_structure(prefix_plan, 32) and not is_full_dim_structure({**rigid, "d_cluster": 8}, 32)
    assert not is_full_dim_structure({**rigid, "d_rerank": 32, "d_search": 16}, 32)
    assert choose_plan([rigid, prefix_plan], 32, target_recall=0.8)["d_cluster"] == 32
    assert choose_plan([rigid, prefix_plan, graph], 32, target_recall=0.8)["scan"] == "hnsw"  # the fastest full-dim
    assert choose_plan([rigid, prefix_plan, clear], 32, target_recall=0.8)["d_search"] == 8
    assert choose_plan([rigid, prefix_plan], 32, target_recall=0.805)["d_cluster"] == 8  # the rigid IVF falls short
    for points in ([rigid, prefix_plan], [rigid, prefix_plan, graph], [rigid, prefix_plan, clear]):
        assert choose_plan(points, 32, target_recall=0.8)["qps"] == chosen_qps(points, 0.8, 32)


def test_a_recall_within_a_tenth_of_its_standard_error_reaches_the_target():
    from hf_ada.adanns.tuning import RECALL_RESOLUTION, reaches

    assert RECALL_RESOLUTION == 0.1
    assert reaches({"recall": 0.7570, "recall_se": 0.012}, 0.7578)  # 0.0008 short, se 0.012: not resolvable
    assert not reaches({"recall": 0.7550, "recall_se": 0.012}, 0.7578)  # 0.0028 short: more than 0.0012
    assert not reaches({"recall": 0.7570, "recall_se": None}, 0.7578) and reaches({"recall": 0.76}, 0.76)
    slow_exact = _p("flat", 0.760, 2.0, nprobe=5)
    fast_close = {**_p("flat", 0.757, 1.0, nprobe=4), "recall_se": 0.012}
    assert choose_plan([slow_exact, fast_close], 32, target_recall=0.758)["nprobe"] == 4


def test_near_front_literal():
    a, b, c, d = _p("flat", 0.9, 2.0), _p("flat", 0.8, 1.0), _p("flat", 0.85, 2.4), _p("flat", 0.7, 1.3)
    # fastest at recall >= 0.85 is a (2.0 ms): c at 2.4 <= 1.25 x 2.0 is near; at >= 0.7 it is b (1.0): d 1.3 > 1.25
    assert {id(p) for p in near_front([a, b, c, d], 1.25)} == {id(a), id(b), id(c)}
    assert {id(p) for p in near_front([a, b, c, d], 1.0)} == {id(p) for p in pareto_front([a, b, c, d], cost="ms")}


def test_retime_front_times_the_near_front_plans_and_leaves_the_rest(data):
    x, q = data
    idx = AdANNSIndex.build(x, AdANNSConfig(dim=D, d_cluster=8, d_search=16, nlist=24, nprobe=4), show_progress=False)
    truth = [set(t) for t in exact_top(q, x, 10)]
    grid = [{"nprobe": p, "d_search": D, "d_rerank": None} for p in (1, 4, 24)]
    points = idx.tune(q, truth, k=10, grid=grid, repeats=1, show_progress=False)
    far, near, top = (next(p for p in points if p["nprobe"] == v) for v in (1, 4, 24))
    far["ms"], far["qps"] = 1e6, 1e-3  # absurdly slow: no contender, kept as it is
    near["ms"] = marker = 1.2 * top["ms"]  # off the front (top is as fast and more accurate), but within 1.25x
    assert near not in pareto_front(points, cost="ms") and top["recall"] > near["recall"]
    retime_front(idx, q, points, k=10, rounds=1, passes=1)
    assert far["ms"] == 1e6
    assert near["ms"] != marker and near["qps"] == pytest.approx(1000.0 / near["ms"])


def test_retime_front_times_a_fast_contender_until_a_floor_of_seconds(data, monkeypatch):
    """A contender answering in microseconds (this tiny index) is timed RETIME_MAX_ROUNDS times, not the asked
    rounds; with no floor, exactly the asked rounds."""
    from collections import Counter

    from hf_ada.adanns import tuning

    x, q = data
    idx = AdANNSIndex.build(x, AdANNSConfig(dim=D, d_cluster=8, d_search=16, nlist=24, nprobe=4), show_progress=False)
    truth = [set(t) for t in exact_top(q, x, 10)]
    grid = [{"nprobe": p, "d_search": D, "d_rerank": None} for p in (1, 4, 24)]
    points = idx.tune(q, truth, k=10, grid=grid, repeats=1, show_progress=False)
    calls: Counter = Counter()
    search = idx.search_batch

    def counted(queries, k, **settings):
        calls[tuple(sorted(settings.items()))] += 1
        return search(queries, k, **settings)

    monkeypatch.setattr(idx, "search_batch", counted)
    retime_front(idx, q, points, k=10, rounds=2, passes=1)
    assert calls and set(calls.values()) == {tuning.RETIME_MAX_ROUNDS}
    calls.clear()
    monkeypatch.setattr(tuning, "RETIME_MIN_SECONDS", 0.0)
    retime_front(idx, q, points, k=10, rounds=2, passes=1)
    assert calls and set(calls.values()) == {2}


def literal_ivf_recalls(idx: AdANNSIndex, x: np.ndarray, q: np.ndarray, truth: np.ndarray, nprobe: int) -> np.ndarray:
    """Per-query recall@10 of the rigid IVF on all dims, from the centroids: the rows of the nprobe closest
    lists, scored exactly, against brute force's top 10."""
    centroids = idx.storage.centroids[D]
    assigned = np.argmax(unit(x) @ centroids.T, axis=1)
    out = []
    for qi, t in zip(q, truth):
        probed = np.argsort(-(unit(qi[None]) @ centroids.T)[0])[:nprobe]
        cands = np.flatnonzero(np.isin(assigned, probed))
        top = cands[np.argsort(-(unit(qi[None]) @ unit(x[cands]).T)[0], kind="stable")[:10]]
        out.append(len(set(top.tolist()) & set(t.tolist())) / 10)
    return np.array(out)


def test_tune_walks_the_fine_ladder_around_the_front_with_exact_recalls(data):
    x, q = data
    idx = AdANNSIndex.build(x, AdANNSConfig(dim=D, d_cluster=8, d_search=16, nlist=24, nprobe=4,
                                            extra_d_clusters=[D]), show_progress=False)
    truth = exact_top(q, x, 10)
    grid = [{"d_cluster": D, "d_search": D, "nprobe": p, "d_rerank": None} for p in (1, 2, 4, 8, 16)]
    points = idx.tune(q, [set(t) for t in truth], k=10, grid=grid, refine=True, repeats=1, show_progress=False)
    probes = sorted(p["nprobe"] for p in points)
    assert len(probes) == len(set(probes)) and set(probes) <= set(NPROBE_LADDER)
    refined = [p for p in points if p["nprobe"] not in (1, 2, 4, 8, 16)]
    assert refined  # a one-family front always has a neighbour to measure (nprobe 1 -> 2 is measured; 16 -> 20)
    ladder = [v for v in NPROBE_LADDER if v <= 24]
    for p in refined:  # each is one ladder step from a plan measured before it
        i = ladder.index(p["nprobe"])
        assert {ladder[max(i - 1, 0)], ladder[min(i + 1, len(ladder) - 1)]} & (set(probes) - {p["nprobe"]})
    for p in points:  # every recall, the refined ones included, against the literal IVF and brute force
        literal = literal_ivf_recalls(idx, x, q, truth, p["nprobe"])
        assert p["recall"] == pytest.approx(literal.mean())
        assert p["recall_se"] == pytest.approx(literal.std(ddof=1) / math.sqrt(len(q)))
    recalls = [p["recall"] for p in sorted(points, key=lambda p: p["nprobe"])]
    assert recalls == sorted(recalls)  # more lists probed, exact scores: never a lower recall
    # a target between two first-pass settings is met, and by the fastest measured plan reaching it
    lo, hi = (next(p for p in points if p["nprobe"] == v)["recall"] for v in (4, 8))
    target = (lo + hi) / 2
    plan = choose_plan(points, D, target_recall=target)
    assert plan["recall"] >= target - 0.1 * plan["recall_se"]
    assert plan["qps"] == chosen_qps(points, target, D)
    assert f"+- {plan['recall_se']:.4f}" in plan["reason"]


def test_default_tune_refines_and_a_loaded_index_answers_targets_from_its_fronts(data, tmp_path):
    x, q = data
    idx = AdANNSIndex.build(x, AdANNSConfig(dim=D, d_cluster=8, d_search=16, nlist=24, nprobe=4, hnsw_m=8),
                            show_progress=False)
    truth = exact_top(q, x, 10)
    points = idx.tune(q, [set(t) for t in truth], k=10, repeats=1, show_progress=False)
    first_pass = set(NPROBES) | {4}
    assert any(p["scan"] in ("flat", "pq") and p["nprobe"] not in first_pass for p in points) or \
        any(p["scan"] == "hnsw" and p["ef_search"] not in (16, 32, 64, 128, 256) for p in points)
    loaded = AdANNSIndex.from_pretrained(idx.save_pretrained(tmp_path / "idx"))
    assert loaded.tuning.get("points") is None  # only the fronts are saved
    for target in (0.3, 0.6, 0.8, 0.95):
        built = idx._resolve({}, target_recall=target).as_dict()
        assert loaded._resolve({}, target_recall=target).as_dict() == built
        _, rows = loaded.search_batch(q, k=10, target_recall=target)
        np.testing.assert_array_equal(rows, idx.search_batch(q, k=10, **built)[1])


def test_checked_settings_follow_the_structures_they_were_checked_on(data):
    """A search's settings are checked once per structure and reused: a quantizer or graph added later makes
    its plans valid, and a plan checked before is refused again once its quantizer is dropped."""
    x, q = data
    idx = AdANNSIndex.build(x, AdANNSConfig(dim=D, d_cluster=8, d_search=16, nlist=24, nprobe=4), show_progress=False)
    for _ in range(2):  # the second time from the cache: the same answer
        with pytest.raises(ValueError, match="d_cluster must be one of the trained prefixes"):
            idx.search_batch(q, k=5, d_cluster=16, d_search=16, d_rerank=None)
        with pytest.raises(ValueError, match="scan='hnsw' walks the graph"):
            idx.search_batch(q, k=5, scan="hnsw", d_search=16, d_rerank=None)
    idx.add_quantizer(16)
    idx.add_graph(16, m=8)
    _, rows = idx.search_batch(q, k=5, d_cluster=16, d_search=16, nprobe=24, d_rerank=None)  # every list: exact
    np.testing.assert_array_equal(rows, exact_top(q[:, :16], x[:, :16], 5))
    assert idx.settings(scan="hnsw", d_search=16, d_rerank=None).scan == "hnsw"
    with pytest.raises(ValueError, match="nprobe must be an int in"):
        idx.settings(nprobe=25)
    idx.storage.drop_structure(d_cluster=16)  # what tune does to a quantizer no front plan uses
    idx.config.extra_d_clusters = []
    with pytest.raises(ValueError, match="d_cluster must be one of the trained prefixes"):
        idx.search_batch(q, k=5, d_cluster=16, d_search=16, nprobe=24, d_rerank=None)


def test_tune_times_the_contenders_per_thread_count_and_searches_use_the_nearest(data, tmp_path):
    """One tune times the front at every asked faiss thread count (only ``ms_at`` of the other counts is
    written, the thread count is restored), chooses a plan per count, and a search -- of this index or of its
    saved copy -- answers with the plan timed nearest the thread count in effect."""
    x, q = data
    idx = AdANNSIndex.build(x, AdANNSConfig(dim=D, d_cluster=8, d_search=16, nlist=24, nprobe=4, hnsw_m=8),
                            show_progress=False)
    truth = [set(t) for t in exact_top(q, x, 10)]
    with pytest.raises(ValueError, match="threads must be a list of positive ints"):
        idx.tune(q, truth, k=10, threads="12", repeats=1, show_progress=False)
    points = idx.tune(q, truth, k=10, threads=[1, 2], repeats=1, show_progress=False)
    assert faiss.omp_get_max_threads() == 1
    points = idx.tuning["points"]
    flat = next(p for p in points if p["scan"] == "exact" and p["d_search"] == D and not p["d_rerank"])
    assert set(flat["ms_at"]) == {"1", "2"} and flat["ms_at"]["1"] == flat["ms"]  # the tuning count's time
    assert all(p["ms_at"]["1"] == p["ms"] for p in points)
    assert any("2" in p["ms_at"] for p in points if p is not flat)  # contenders beside flat timed at 2
    assert not all("2" in p["ms_at"] for p in points)  # ... but not every plan
    assert set(idx.tuning["plans_at"]) == {"1", "2"}
    for t in (1, 2):
        chosen = choose_plan(points, D, threads=t, num_queries=len(q))
        assert {key: idx.tuning["plans_at"][str(t)][key] for key in SEARCH_KEYS} == {key: chosen[key] for key in SEARCH_KEYS}
    loaded = AdANNSIndex.from_pretrained(idx.save_pretrained(tmp_path / "idx"))
    assert loaded.tuning["plans_at"] == idx.tuning["plans_at"]
    try:
        for t in (1, 2, 3):
            faiss.omp_set_num_threads(t)
            nearest = "1" if t == 1 else "2"
            assert idx.plan == loaded.plan == idx.tuning["plans_at"][nearest]
            for target in (0.5, 0.9):
                want = {key: choose_plan(points, D, target_recall=target, threads=int(nearest))[key] for key in SEARCH_KEYS}
                assert idx._resolve({}, target_recall=target).as_dict() == want
                assert loaded._resolve({}, target_recall=target).as_dict() == want
    finally:
        faiss.omp_set_num_threads(1)
    before = {id(p): (p["ms"], p["qps"]) for p in points}
    retime_front(idx, q, points, k=10, rounds=1, passes=1, threads=2)
    assert {id(p): (p["ms"], p["qps"]) for p in points} == before and faiss.omp_get_max_threads() == 1
