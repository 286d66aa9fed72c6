"""The offline demo used by ``hf-ada demo``: runs end to end (quick mode) and writes what it promises."""

from __future__ import annotations

import json

import torch

from hf_ada.adanns import AdANNSIndex
from hf_ada.demo.adanns_stage import docstring_corpus, run_demo

torch.set_num_threads(2)


def test_docstring_corpus_pairs_summary_with_body():
    names, queries, documents = docstring_corpus(50)
    assert len(names) == len(queries) == len(documents) == 50
    assert all(q and d and q not in d[: len(q)] for q, d in zip(queries, documents))
    assert len(set(documents)) == 50


def test_quick_demo(tmp_path):
    result = run_demo(tmp_path, quick=True)
    assert result["num_documents"] == 400
    assert 0.0 < result["rigid_recall@10"] <= result["exact_recall@10"] <= 1.0
    assert (tmp_path / "adanns_demo.png").stat().st_size > 1000
    text = (tmp_path / "adanns_demo.md").read_text()
    assert "AdANNS-IVF" in text and "rigid IVF" in text
    index = AdANNSIndex.from_pretrained(tmp_path / "adanns_index", expected_num_rows=400)
    assert index.config.d_cluster == 48 and index.pareto_front
    assert json.dumps(result)  # plain JSON-able numbers and paths


def test_plot_fronts_draws_the_panels_asked_for(tmp_path):
    import matplotlib.image
    import pytest

    from hf_ada.demo.plots import plot_fronts

    series = {"a": [{"recall": 0.5, "qps": 100.0, "flops": 10.0}, {"recall": 0.9, "qps": 10.0, "flops": 100.0}]}
    both = matplotlib.image.imread(plot_fronts(series, tmp_path / "both.png"))
    qps_only = matplotlib.image.imread(plot_fronts(series, tmp_path / "qps.png", flops=False))
    assert qps_only.shape[0] == both.shape[0] and qps_only.shape[1] < 0.6 * both.shape[1]  # one panel, not two
    with pytest.raises(ValueError, match="flops=True or qps=True"):
        plot_fronts(series, tmp_path / "none.png", flops=False, qps=False)
