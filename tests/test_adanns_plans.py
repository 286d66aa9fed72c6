"""Every AdANNS search plan against a literal numpy transcription on small data (exact scans, rigid and
AdANNS IVF through faiss, the IVF+PQ composite), the plan choice, and the load checks of a saved index
(tampered, hostile or corrupt files refused before use, naming the file)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import faiss
import numpy as np
import pytest

from hf_ada.adanns import AdANNSConfig, AdANNSIndex
from hf_ada.adanns.tuning import at_threads, choose_plan, nearest_threads
from hf_ada.common.artifact import ArtifactError

from adanns_reference import chosen_qps, unit

faiss.omp_set_num_threads(1)

D = 24


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    """700 clustered rows (another seed and size than test_adanns_index), 12 queries."""
    gen = np.random.default_rng(7)
    mix = gen.standard_normal((10, D))
    rows = mix[gen.integers(0, 10, 700)] + 0.7 * gen.standard_normal((700, D))
    return rows.astype(np.float32), (mix[gen.integers(0, 10, 12)] + 0.7 * gen.standard_normal((12, D))).astype(np.float32)


@pytest.fixture(scope="module")
def index(data) -> AdANNSIndex:
    x, _ = data
    config = AdANNSConfig(dim=D, d_cluster=6, d_search=12, nlist=12, nprobe=3, extra_d_clusters=[D],
                          pq_bytes=4, d_pq=16, d_rerank=D, rerank_k=25, scan="flat")
    return AdANNSIndex.build(x, config, batch_size=100, show_progress=False)


def literal_top(scores: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    return rows[np.argsort(-scores, kind="stable")[:k]]


def literal_candidates(index: AdANNSIndex, x: np.ndarray, q: np.ndarray, d_cluster: int, nprobe: int) -> np.ndarray:
    """Rows of the lists the query's d_cluster prefix picks, from the centroids (spherical k-means)."""
    centroids = index.storage.centroids[d_cluster]
    assigned = np.argmax(unit(x[:, :d_cluster]) @ centroids.T, axis=1)
    probed = np.argsort(-(unit(q[None, :d_cluster]) @ centroids.T)[0])[:nprobe]
    return np.flatnonzero(np.isin(assigned, probed))


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_exact_flat_plan_is_brute_force(data, metric):
    x, q = data
    idx = AdANNSIndex.build(x, AdANNSConfig(dim=D, d_cluster=6, d_search=D, nlist=4, metric=metric),
                            show_progress=False)
    scores, rows = idx.search_batch(q, k=8, scan="exact", d_search=D, d_rerank=None)
    if metric == "ip":
        ref = unit(q) @ unit(x).T
        order = np.argsort(-ref, axis=1)[:, :8]
    else:
        ref = ((q[:, None] - x[None]) ** 2).sum(-1)
        order = np.argsort(ref, axis=1)[:, :8]
    np.testing.assert_array_equal(rows, order)
    np.testing.assert_allclose(scores, np.take_along_axis(ref, order, 1), rtol=1e-4, atol=1e-4)


def test_exact_low_dim_scan_then_rerank(data, index):
    x, q = data
    _, rows = index.search_batch(q, k=5, scan="exact", d_search=8, d_rerank=D, rerank_k=30)
    for i in range(len(q)):
        shortlist = literal_top((unit(q[i : i + 1, :8]) @ unit(x[:, :8]).T)[0], np.arange(len(x)), 30)
        ref = literal_top((unit(q[i : i + 1]) @ unit(x[shortlist]).T)[0], shortlist, 5)
        np.testing.assert_array_equal(rows[i], ref)


@pytest.mark.parametrize(("d_cluster", "d_search"), [(6, 12), (6, 4), (D, D)])
def test_ivf_plans_scan_exactly_the_probed_lists(data, index, d_cluster, d_search):
    """AdANNS-IVF (d_cluster=6) and the rigid IVF (extra quantizer on all 24 dims) of the same index."""
    x, q = data
    _, rows = index.search_batch(q, k=6, d_cluster=d_cluster, d_search=d_search, nprobe=3, d_rerank=None)
    for i in range(len(q)):
        cands = literal_candidates(index, x, q[i], d_cluster, 3)
        ref = literal_top((unit(q[i : i + 1, :d_search]) @ unit(x[cands, :d_search]).T)[0], cands, 6)
        np.testing.assert_array_equal(rows[i], ref)


def test_ivf_pq_composite_matches_literal_adc_on_the_probed_lists(data, index):
    x, q = data
    st = index.storage
    rotation, codebooks, codes = st.opq_rotation, st.pq_codebooks, st.codes
    scores, rows = index.search_batch(q, k=5, scan="pq", nprobe=4, d_rerank=None)
    for i in range(len(q)):
        cands = literal_candidates(index, x, q[i], 6, 4)
        q_rot = unit(q[i : i + 1, :16]) @ rotation.T
        adc = sum(q_rot[0, 4 * m : 4 * m + 4] @ codebooks[m, codes[cands, m]].T for m in range(4))
        np.testing.assert_allclose(scores[i], np.sort(adc)[::-1][:5], rtol=1e-4, atol=1e-5)
        assert set(rows[i].tolist()) <= set(cands.tolist())


def test_tune_chooses_the_fastest_plan_meeting_the_target_and_says_why(data, index, caplog):
    x, q = data
    truth = np.argsort(-(unit(q) @ unit(x).T), axis=1)[:, :10]
    relevant = [set(t) for t in truth]
    with caplog.at_level("INFO", logger="hf_ada.adanns.index"):
        points = index.tune(q, relevant, k=10, repeats=1, show_progress=False)
    flat = [p for p in points if p["scan"] == "exact" and p["d_search"] == D and not p["d_rerank"]]
    assert len(flat) == 1 and flat[0]["recall"] == pytest.approx(1.0)  # exact flat search is a candidate
    assert any(p["d_cluster"] == D and p["scan"] == "flat" for p in points)  # rigid IVF too
    assert not any(p["scan"] == "flat" and p["d_rerank"] and p["d_rerank"] <= p["d_search"] for p in points)
    plan = index.plan
    assert plan["qps"] == chosen_qps(points, 0.99 * flat[0]["recall"], D) and plan["qps"] >= flat[0]["qps"]
    assert "fastest measured plan" in plan["reason"] and plan["reason"] in caplog.text
    _, rows = index.search_batch(q, k=10)  # the chosen plan is now the default
    _, direct = index.search_batch(q, k=10, **{k: plan[k] for k in ("d_cluster", "d_search", "nprobe", "d_rerank",
                                                                     "rerank_k", "scan")})
    np.testing.assert_array_equal(rows, direct)
    # any plan meets 0: the fastest one, or a simpler one (faiss's full-dim structure, a one-pass plan) within
    # SIMPLER_PLAN_MARGIN of it, as the transcribed rule says
    _, fast = index.search_batch(q, k=10, target_recall=0.0)
    anything = choose_plan(points, D, target_recall=0.0)
    assert anything["qps"] == chosen_qps(points, 0.0, D)
    assert index.settings(**{k: anything[k] for k in ("d_cluster", "d_search", "nprobe", "d_rerank", "rerank_k",
                                                      "scan")}).as_dict() == index._resolve({}, target_recall=0.0).as_dict()
    assert fast.shape == (len(q), 10)
    index.tuning = {"pareto_front": [], "time_front": [], "plan": None}


def _point(recall: float, qps: float, flops: float, scan: str = "flat", d_search: int = 8) -> dict:
    return {"d_cluster": 4, "d_search": d_search, "nprobe": 1, "d_rerank": None, "rerank_k": 10, "scan": scan, "ef_search": 64,
            "recall": recall, "mrr": recall, "flops": flops, "qps": qps, "ms": 1000.0 / qps}


def test_choose_plan_literal():
    flat = _point(0.90, 1000.0, 1e6, scan="exact", d_search=32)
    a, b, c = _point(0.895, 5000.0, 1e4), _point(0.80, 9000.0, 1e3), _point(0.89, 20000.0, 5e3)
    points = [flat, a, b, c]
    default = choose_plan(points, 32)
    assert (default["qps"], default["recall"]) == (5000.0, 0.895)  # fastest within 0.99 x 0.90 = 0.891
    assert "5.00x the queries/s of exact flat search" in default["reason"]
    assert choose_plan(points, 32, target_recall=0.85)["qps"] == 20000.0
    assert choose_plan(points, 32, time_budget_ms=0.15)["recall"] == 0.89  # 0.11 ms and 0.05 ms fit
    assert choose_plan(points, 32, budget_flops=2e3)["recall"] == 0.80
    only_flat = choose_plan([flat, b], 32)
    assert only_flat["scan"] == "exact" and "exact flat search is the fastest plan" in only_flat["reason"]
    with pytest.raises(ValueError, match="at most one of"):
        choose_plan(points, 32, target_recall=0.5, budget_flops=1.0)
    with pytest.raises(ValueError, match="below the cheapest"):
        choose_plan(points, 32, budget_flops=1.0)



def test_choose_plan_uses_the_times_of_the_nearest_measured_thread_count():
    """A graph walk gains more from a second thread than a flat scan: the plan chosen for a recall differs by
    thread count. Literal: with per-thread times, each thread count's choice is the fastest plan as timed
    there; a plan never timed at a thread count is not chosen for it; counts between are answered by the
    nearest measured one (by ratio), and a FLOPs budget needs no times."""
    flat = {**_point(1.0, 1000.0, 1e6, scan="exact", d_search=32), "ms_at": {"1": 1.0, "2": 0.6}}
    walk = {**_point(0.96, 1100.0, 1e4, scan="hnsw"), "ms_at": {"1": 1 / 1.1, "2": 0.45}}
    ivf = {**_point(0.97, 1250.0, 5e4), "ms_at": {"1": 0.8, "2": 0.55}}
    quick = {**_point(0.99, 5000.0, 2e5), "ms_at": {"1": 0.2}}  # never timed at 2 threads
    points = [flat, walk, ivf, quick]
    at_one = choose_plan(points, 32, target_recall=0.95, threads=1)
    assert at_one["qps"] == 5000.0 and "timed with 1 faiss thread)" in at_one["reason"]
    at_two = choose_plan(points, 32, target_recall=0.95, threads=2)
    assert (at_two["scan"], at_two["qps"]) == ("hnsw", pytest.approx(1000.0 / 0.45))  # 2222 > 1818 (IVF), 1667
    assert "timed with 2 faiss threads" in at_two["reason"]
    assert choose_plan(points, 32, target_recall=0.965, threads=2)["qps"] == pytest.approx(1000.0 / 0.55)
    assert choose_plan(points, 32, target_recall=0.95, threads=8)["scan"] == "hnsw"  # nearest measured: 2
    assert choose_plan(points, 32, target_recall=0.95, threads=1)["scan"] == "flat"
    assert choose_plan(points, 32, budget_flops=3e5)["recall"] == 0.99  # whatever the threads
    assert [p["qps"] for p in at_threads(points, 2)] == pytest.approx([1000 / 0.6, 1000 / 0.45, 1000 / 0.55])
    assert at_threads([_point(0.9, 10.0, 1.0)], 2)[0]["qps"] == 10.0  # tuned before per-thread times: as is
    assert nearest_threads([1, 2], 1) == 1 and nearest_threads([1, 4], 2) == 4 and nearest_threads([1, 2, 16], 4) == 2


# ---------------------------------------------------------------- load checks
def _rebind(folder: Path, name: str) -> None:
    """Play a hostile Hub repo: record the (tampered) file's size and SHA-256 in config.json."""
    config = json.loads((folder / "config.json").read_text())
    data = (folder / name).read_bytes()
    config["hf_ada_artifact"]["files"][name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (folder / "config.json").write_text(json.dumps(config))


@pytest.fixture
def saved(data, tmp_path) -> Path:
    x, _ = data
    idx = AdANNSIndex.build(x, AdANNSConfig(dim=D, d_cluster=6, d_search=12, nlist=8, nprobe=2), show_progress=False)
    return idx.save_pretrained(tmp_path / "idx")


def test_swapped_faiss_file_is_refused(data, saved, tmp_path):
    x, _ = data
    other = AdANNSIndex.build(x + 1.0, AdANNSConfig(dim=D, d_cluster=6, d_search=12, nlist=8, nprobe=2),
                              show_progress=False).save_pretrained(tmp_path / "other")
    (saved / "vectors.faiss").write_bytes((other / "vectors.faiss").read_bytes())  # same size, other vectors
    with pytest.raises(ArtifactError, match="vectors.faiss differs from the file saved"):
        AdANNSIndex.from_pretrained(saved)


def test_hostile_faiss_header_is_refused_before_faiss_reads_it(saved, monkeypatch):
    header = bytearray((saved / "vectors.faiss").read_bytes()[:45])
    header[8:16] = (1 << 31).to_bytes(8, "little")  # ntotal: 2^31 vectors (8 TiB for faiss to allocate)
    (saved / "vectors.faiss").write_bytes(bytes(header) + b"\0" * 1000)  # a 1 KB file
    _rebind(saved, "vectors.faiss")

    def no_read(*args, **kwargs):
        raise AssertionError("faiss.read_index must not see this file")

    monkeypatch.setattr(faiss, "read_index", no_read)
    with pytest.raises(ArtifactError, match="vectors.faiss is corrupt .* declares 2147483648 x 24 vectors"):
        AdANNSIndex.from_pretrained(saved)


def test_truncated_faiss_file_is_refused(saved):
    data = (saved / "vectors.faiss").read_bytes()
    (saved / "vectors.faiss").write_bytes(data[: len(data) // 2])
    _rebind(saved, "vectors.faiss")
    with pytest.raises(ArtifactError, match="vectors.faiss is corrupt .* declares 16800 floats but the file has"):
        AdANNSIndex.from_pretrained(saved)


def test_corrupt_json_and_bad_structure_are_refused_naming_the_file(saved):
    good = (saved / "tuning.json").read_bytes()
    (saved / "tuning.json").write_text('{"pareto_front": [')
    _rebind(saved, "tuning.json")
    with pytest.raises(ArtifactError, match="tuning.json is not valid JSON"):
        AdANNSIndex.from_pretrained(saved)
    (saved / "tuning.json").write_bytes(good)
    _rebind(saved, "tuning.json")
    from safetensors.numpy import load_file, save_file

    arrays = load_file(str(saved / "lists.safetensors"))
    arrays["ids_6"][[0, 1]] = arrays["ids_6"][0]  # a row twice, another never
    save_file(arrays, str(saved / "lists.safetensors"))
    _rebind(saved, "lists.safetensors")
    with pytest.raises(ArtifactError, match="ids_6 are not a permutation of the 700 rows"):
        AdANNSIndex.from_pretrained(saved)
    arrays["ids_6"] = np.arange(700, dtype=np.int64)
    arrays["offsets_6"][3] = 10_000
    save_file(arrays, str(saved / "lists.safetensors"))
    _rebind(saved, "lists.safetensors")
    with pytest.raises(ArtifactError, match="offsets_6 are not monotone"):
        AdANNSIndex.from_pretrained(saved)
    (saved / "lists.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    _rebind(saved, "lists.safetensors")
    with pytest.raises(ArtifactError, match="lists.safetensors is not a readable safetensors file"):
        AdANNSIndex.from_pretrained(saved)



@pytest.mark.parametrize("tamper, message", [
    (lambda t, plan: t.update(plans_at={"0": plan}), "'plans_at' must map faiss thread counts to plans"),
    (lambda t, plan: t.update(plans_at={"two": plan}), "'plans_at' must map faiss thread counts to plans"),
    (lambda t, plan: t.update(plans_at={"2": {**plan, "nprobe": 99}}), "a plan is not valid for this index"),
    (lambda t, plan: t.update(time_front=[{**plan, "ms_at": {"1": -1.0}}]), "'ms_at' must map faiss thread counts"),
    (lambda t, plan: t.update(time_front=[{**plan, "ms_at": {"01": 1.0}}]), "'ms_at' must map faiss thread counts"),
    (lambda t, plan: t.update(time_front=[{**plan, "ms_at": [1.0]}]), "'ms_at' must map faiss thread counts"),
])
def test_per_thread_times_and_plans_are_checked_at_load(saved, tamper, message):
    tuning = json.loads((saved / "tuning.json").read_text())
    config = json.loads((saved / "config.json").read_text())
    plan = {key: config[key] for key in ("d_cluster", "d_search", "nprobe", "d_rerank", "rerank_k", "scan", "ef_search")}
    tamper(tuning, {**plan, "recall": 0.5, "qps": 10.0, "ms": 100.0})
    (saved / "tuning.json").write_text(json.dumps(tuning))
    _rebind(saved, "tuning.json")
    with pytest.raises(ArtifactError, match=message):
        AdANNSIndex.from_pretrained(saved)


def test_memory_mapped_load_gives_identical_results(data, index, tmp_path):
    x, q = data
    folder = index.save_pretrained(tmp_path / "mm")
    mapped = AdANNSIndex.from_pretrained(folder, mmap=True)
    assert str(folder / "vectors.faiss") in Path("/proc/self/maps").read_text()  # really mapped, not read
    for plan in ({"scan": "exact", "d_search": D, "d_rerank": None}, {"nprobe": 3, "d_search": 12, "d_rerank": D},
                 {"scan": "pq", "nprobe": 4, "d_rerank": D}):
        np.testing.assert_array_equal(mapped.search_batch(q, k=5, **plan).total_indices,
                                      index.search_batch(q, k=5, **plan).total_indices)
    _, rows = mapped.search_batch(q, k=1, scan="exact", d_search=D, d_rerank=None)
    np.testing.assert_array_equal(rows[:, 0], np.argmax(unit(q) @ unit(x).T, axis=1))  # against brute force


def test_tuning_keeps_only_the_structures_of_the_chosen_plan(data):
    x, q = data
    idx = AdANNSIndex.build(x, AdANNSConfig(dim=D, d_cluster=6, d_search=12, nlist=8, nprobe=2), show_progress=False)
    idx.tune_on_rows(x, 50, grid=[{"nprobe": 2, "d_search": 6, "d_rerank": None}, {"nprobe": 8, "d_search": D,
                                                                                     "d_rerank": None}])
    plan = idx.plan
    assert (plan["nprobe"], plan["d_search"]) == (8, D)  # only this one reaches 0.99 of exact recall (1.0)
    assert [k for k in idx.memory() if k.startswith(("ivf", "flat"))] == [f"ivf_flat d_cluster=6 d={D}"]


def test_build_from_a_memory_mapped_file_equals_the_in_memory_build(data, tmp_path):
    x, q = data
    np.save(tmp_path / "x.npy", x)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")  # pages are released after each copied batch
    config = dict(dim=D, d_cluster=6, d_search=12, nlist=8, nprobe=2, train_size=300)
    a = AdANNSIndex.build(mapped, AdANNSConfig(**config), batch_size=64, show_progress=False)
    b = AdANNSIndex.build(x, AdANNSConfig(**config), batch_size=64, show_progress=False)
    np.testing.assert_array_equal(a.storage.vector_view(), b.storage.vector_view())
    np.testing.assert_array_equal(a.storage.ids[6], b.storage.ids[6])
    np.testing.assert_array_equal(mapped, x)  # the source is untouched
    np.testing.assert_array_equal(a.search_batch(q, k=5).total_indices, b.search_batch(q, k=5).total_indices)
