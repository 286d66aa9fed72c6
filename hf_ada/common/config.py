"""A mixin for hf-ada's config dataclasses: a versioned JSON round trip.

Like peft's configs, ``from_dict`` tolerates what a newer minor version of hf-ada adds: unknown keys are
logged as a warning and ignored. It refuses only what it cannot honour: a file without ``schema_version``
(not an hf-ada config) or a newer schema version (a layout change this hf-ada does not know how to read).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Any, ClassVar, TypeVar

from .files import loads_json, read_json, write_json

logger = logging.getLogger(__name__)

#: the artifact record :mod:`hf_ada.common.artifact` adds to a saved config (not a config field)
ARTIFACT_KEY = "hf_ada_artifact"

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
        """Raise ``ValueError`` unless this hf-ada can read schema ``version`` (an int, at most its own)."""
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= cls.SCHEMA_VERSION:
            raise ValueError(
                f"{cls.CONFIG_KIND} schema_version {version!r} is not supported by this hf-ada (it reads "
                f"{cls.SCHEMA_VERSION}); upgrade hf-ada, or re-create the artifact with this version"
            )

    @classmethod
    def from_dict(cls: type[ConfigT], payload: dict[str, Any]) -> ConfigT:
        """Inverse of :meth:`to_dict`; unknown keys are warned about and ignored, newer schema versions refused."""
        if not isinstance(payload, dict):
            raise ValueError(f"a {cls.CONFIG_KIND} config must be a JSON object, got {type(payload).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        if "schema_version" not in payload:
            raise ValueError(f"no schema_version: not an hf-ada {cls.CONFIG_KIND} config")
        cls.check_schema_version(payload["schema_version"])
        unknown = sorted(set(payload) - known - {ARTIFACT_KEY})
        if unknown:
            logger.warning(
                "%s config: ignoring keys this hf-ada does not know (written by a newer version?): %s",
                cls.CONFIG_KIND, unknown,
            )
        return cls(**{key: value for key, value in payload.items() if key in known})

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json_string(cls: type[ConfigT], text: str) -> ConfigT:
        return cls.from_dict(loads_json(text, what=f"a {cls.CONFIG_KIND} config"))

    def save_json(self, path: str | os.PathLike) -> None:
        """Write the config as JSON (atomically)."""
        write_json(path, self.to_dict())

    @classmethod
    def load_json(cls: type[ConfigT], path: str | os.PathLike) -> ConfigT:
        """Read a config written by :meth:`save_json`."""
        return cls.from_dict(read_json(path))
