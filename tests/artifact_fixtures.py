"""A real (tiny) artifact for the shared-layer tests: numpy arrays in safetensors files plus a JSON config,
saved through :class:`~hf_ada.common.artifact.HubArtifactMixin` exactly as the AdANNS index and the AdaNPC
predictor are. Imported by the ``test_common_*`` / ``test_trust_*`` tests and by the processes they start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from hf_ada.common.artifact import HubArtifactMixin


class Arrays(HubArtifactMixin):
    """Named arrays, one safetensors file each (so a save writes several files)."""

    artifact_kind = "test-arrays"
    config_name = "config.json"
    repo_type = "model"
    file_patterns = ("*.safetensors", "extra/*.json")

    def __init__(self, arrays: dict[str, np.ndarray], tag: str = "", extra: Any = None) -> None:
        self.arrays = arrays
        self.tag = tag
        self.extra = extra

    def _write_files(self, folder: Path) -> dict[str, Any]:
        for name, array in self.arrays.items():
            save_file({"a": array}, str(folder / f"{name}.safetensors"))
        if self.extra is not None:  # raw JSON text, written as is
            (folder / "extra").mkdir()
            (folder / "extra" / "data.json").write_text(self.extra)
        return {"tag": self.tag, "names": sorted(self.arrays)}

    @classmethod
    def _from_files(cls, folder: Path, payload: dict[str, Any], **kwargs: Any) -> Arrays:
        return cls({n: load_file(str(folder / f"{n}.safetensors"))["a"] for n in payload["names"]}, payload["tag"])


class Other(HubArtifactMixin):
    """A second kind, so a folder holding it can be told apart (only known kinds' configs are read)."""

    artifact_kind = "other-kind"
    config_name = "other_config.json"


def arrays(seed: int, names: tuple[str, ...] = ("a", "b", "c"), rows: int = 64) -> Arrays:
    rng = np.random.default_rng(seed)
    return Arrays({n: rng.standard_normal((rows, 8)).astype(np.float32) for n in names}, tag=f"seed{seed}")


def same(x: Arrays, y: Arrays) -> bool:
    return x.tag == y.tag and x.arrays.keys() == y.arrays.keys() and all(
        np.array_equal(x.arrays[k], y.arrays[k]) for k in x.arrays)
