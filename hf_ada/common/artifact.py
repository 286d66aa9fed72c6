"""One artifact protocol for everything hf-ada saves: ``save_pretrained`` / ``from_pretrained`` / ``push_to_hub``.

:class:`HubArtifactMixin` keeps ``huggingface_hub.ModelHubMixin``'s method names and arguments on top of
:mod:`hf_ada.common.folder` (only own files written, crash-safe commit, every file bound by size + SHA-256
and checked on load, every update locked, no link followed out of the folder) and :mod:`hf_ada.common.hub`
(a push publishes exactly the artifact's files).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from .config import ARTIFACT_KEY
from .folder import ArtifactError, check_name, read_artifact, reading, recorded_kind, register_kind, save_artifact
from .folder import sha256_file
from .hub import push_folder, resolve_folder

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .hub import PushOptions

# the protocol's class, plus the folder-level names its users need (the rest: hf_ada.common.folder)
__all__ = ["ARTIFACT_KEY", "ArtifactError", "HubArtifactMixin", "check_name", "read_artifact", "recorded_kind",
           "save_artifact", "sha256_file"]

T = TypeVar("T", bound="HubArtifactMixin")


@contextlib.contextmanager
def _temporary_folder(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)


class HubArtifactMixin:
    """``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` for an hf-ada artifact class.

    A subclass sets :attr:`artifact_kind`, :attr:`config_name` and :attr:`repo_type` (optionally
    :attr:`file_patterns`, the ``fnmatch`` patterns of every file it writes, and a card template:
    ``class MyIndex(HubArtifactMixin, card_template="my_index")``), and implements :meth:`_write_files`
    (write every file but the config into a folder, return the config payload), :meth:`_from_files` (build
    an instance from a verified folder and its payload) and, with a card template, :meth:`_card_values`
    (or :meth:`_render_card` itself). The card is rendered once per save, with the ``repo_id`` when the save
    is for a push.
    """

    artifact_kind: ClassVar[str]
    config_name: ClassVar[str] = "config.json"
    repo_type: ClassVar[str] = "model"
    file_patterns: ClassVar[tuple[str, ...] | None] = None
    card_template: ClassVar[str | None] = None

    def __init_subclass__(cls, *, card_template: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if card_template is not None:
            cls.card_template = card_template
        kind = getattr(cls, "artifact_kind", None)
        if isinstance(kind, str):
            register_kind(kind, cls.config_name, cls.file_patterns)

    # -- what a subclass provides
    def _write_files(self, folder: Path) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def _from_files(cls: type[T], folder: Path, payload: dict[str, Any], **kwargs: Any) -> T:
        raise NotImplementedError

    def _card_values(self, repo_id: str | None = None) -> tuple[Any, dict[str, Any]]:
        """``(card_data, template values)`` for the class's :attr:`card_template`, taken from the artifact itself."""
        raise NotImplementedError(f"{type(self).__name__} sets card_template but does not implement _card_values")

    def _render_card(self, repo_id: str | None = None) -> Any | None:
        """The README card: :attr:`card_template` filled with :meth:`_card_values`, or ``None`` without a template."""
        if self.card_template is None:
            return None
        from .cards import render_card

        card_data, values = self._card_values(repo_id)
        return render_card(self.card_template, card_data, repo_type=self.repo_type, **values)

    # -- the protocol
    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        *,
        overwrite: bool = True,
        repo_id: str | None = None,
        push_to_hub: bool = False,
        protected: tuple[str | os.PathLike, ...] = (),
        lock_timeout: float | None = None,
        **push_options: Unpack[PushOptions],
    ) -> Path | str:
        """Save into ``save_directory`` (only this artifact's files are written or replaced) and return the folder;
        with ``push_to_hub=True`` also upload exactly those files to ``repo_id`` (default: the folder's name) and
        return the commit URL, as ``huggingface_hub``'s mixin does."""
        if not isinstance(push_to_hub, bool):
            raise TypeError(f"push_to_hub must be True or False, got {push_to_hub!r}")
        if repo_id is not None and (not isinstance(repo_id, str) or not repo_id.strip()):
            raise ValueError(f"repo_id must be a non-empty string such as 'user/name', got {repo_id!r}")
        if push_options and not push_to_hub:
            raise TypeError(f"{sorted(push_options)} only apply with push_to_hub=True")
        if push_to_hub:
            repo_id = repo_id or Path(save_directory).resolve().name

        def write(staging: Path) -> dict[str, Any]:
            payload = self._write_files(staging)
            card = self._render_card(repo_id)
            if card is not None:
                card.save(staging / "README.md")
            return payload

        folder = save_artifact(
            save_directory, kind=self.artifact_kind, config_name=self.config_name, write=write,
            overwrite=overwrite, protected=protected, lock_timeout=lock_timeout,
        )
        if not push_to_hub:
            return folder
        push_options.setdefault("commit_message", f"Upload {self.artifact_kind} with hf-ada")
        return push_folder(folder, repo_id, repo_type=self.repo_type, kind=self.artifact_kind,
                           config_name=self.config_name, **push_options)

    @classmethod
    def from_pretrained(
        cls: type[T],
        path_or_repo_id: str | os.PathLike,
        *,
        subfolder: str | None = None,
        revision: str | None = None,
        token: str | bool | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        force_download: bool = False,
        lock_timeout: float | None = None,
        **kwargs: Any,
    ) -> T:
        """Load from a local folder or a Hub repo (``repo_type`` of the class); every file is verified first, and
        a save into the folder running meanwhile is waited for (at most ``lock_timeout`` seconds)."""
        folder = resolve_folder(
            path_or_repo_id, repo_type=cls.repo_type, subfolder=subfolder, revision=revision, token=token,
            cache_dir=cache_dir, local_files_only=local_files_only, force_download=force_download,
        )
        with reading(folder, kind=cls.artifact_kind, config_name=cls.config_name, lock_timeout=lock_timeout) as payload:
            return cls._from_files(folder, payload, **kwargs)

    def push_to_hub(self, repo_id: str, **options: Unpack[PushOptions]) -> str:
        """Save into a temporary folder (card rendered for ``repo_id``) and upload exactly the artifact's files;
        return the commit URL. Options: see :class:`hf_ada.common.hub.PushOptions`.

        On failure raises :class:`hf_ada.common.hub.HubError`; nothing local is changed.
        """
        with _temporary_folder(prefix="hf-ada-push-") as tmp:
            return self.save_pretrained(tmp / "artifact", repo_id=repo_id, push_to_hub=True, **options)
