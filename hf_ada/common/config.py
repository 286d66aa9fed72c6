"""A mixin for hf-ada's config dataclasses: a strict, versioned JSON round trip.

``from_dict`` refuses unknown keys and schema versions other than the class's own (they mean a file from
another tool or a newer hf-ada), so a mismatch is a clear error rather than a silently wrong artifact.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, ClassVar, TypeVar

from .files import read_json, write_json

__all__ = ["JsonConfigMixin"]

ConfigT = TypeVar("ConfigT", bound="JsonConfigMixin")


class JsonConfigMixin:
    """JSON round trip for a ``@dataclass`` with a ``schema_version`` field.

    Subclasses set ``SCHEMA_VERSION`` (the version this hf-ada writes and reads) and ``CONFIG_KIND`` (how
    error messages name the artifact).
    """

    SCHEMA_VERSION: ClassVar[int]
    CONFIG_KIND: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dictionary of every field."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def check_schema_version(cls, version: Any) -> None:
        """Raise ``ValueError`` unless ``version`` is the schema version this hf-ada reads."""
        if version != cls.SCHEMA_VERSION:
            raise ValueError(
                f"{cls.CONFIG_KIND} schema_version {version!r} is not supported by this hf-ada (it reads "
                f"{cls.SCHEMA_VERSION}); upgrade hf-ada, or re-create the artifact with this version"
            )

    @classmethod
    def from_dict(cls: type[ConfigT], payload: dict[str, Any]) -> ConfigT:
        """Inverse of :meth:`to_dict`; unknown keys and other schema versions are refused."""
        if not isinstance(payload, dict):
            raise ValueError(f"a {cls.CONFIG_KIND} config must be a JSON object, got {type(payload).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(payload) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys {unknown}; allowed: {sorted(known)}")
        if "schema_version" not in payload:
            raise ValueError(f"no schema_version: not an hf-ada {cls.CONFIG_KIND} config")
        cls.check_schema_version(payload["schema_version"])
        return cls(**payload)

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json_string(cls: type[ConfigT], text: str) -> ConfigT:
        return cls.from_dict(json.loads(text))

    def save_json(self, path: str | os.PathLike) -> None:
        """Write the config as JSON (atomically)."""
        write_json(path, self.to_dict())

    @classmethod
    def load_json(cls: type[ConfigT], path: str | os.PathLike) -> ConfigT:
        """Read a config written by :meth:`save_json`."""
        return cls.from_dict(read_json(path))
