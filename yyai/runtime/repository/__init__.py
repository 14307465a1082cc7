"""Where an app's versions come from (TF Serving's "source", over a file system or object storage).

A :class:`Repository` holds one folder (or key prefix) per app, laid out the
same way everywhere: flat files, numbered version folders, SavedModels,
``app.toml``. :func:`open_repository` opens a local path (:mod:`.local`) or an
``s3://bucket/prefix`` URL (:mod:`.s3`, any S3-compatible service).

Each app is an :class:`AppSource`. Whatever the repository, what it hands a
ModelUtil is local and complete: a version is immutable and addressed by its
id (a number, or a flat layout's content hash), and every process on every
host fetches exactly the id it is told from the repository itself. A flat
layout is frozen into a snapshot *in the repository* (``<app>/.snapshots/<id>/``),
so another host can fetch it too; the same files copied back after a restore
hash to the same id and serve as that version.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from pathlib import Path

from ..source import VersionCandidate

APP_NAME_PATTERN = r"[A-Za-z][A-Za-z0-9_-]{0,63}"  # a letter, then letters, digits, _ or -; never a dot
APP_NAME = re.compile(rf"^{APP_NAME_PATTERN}$")


class AppSource(ABC):
    """One app of a repository, as the ModelUtil serving it sees it.

    ``folder`` is a local folder holding the app-level files (``app.toml``,
    ``labels.txt``, the handler file, ``sample.*``); ``location`` names the
    app in messages (never with credentials). Every candidate returned by
    :meth:`fetch` and :meth:`freeze` is complete and on local disk.
    """

    name: str
    folder: Path
    location: str

    @abstractmethod
    def exists(self) -> bool:
        """Whether the app is in the repository now."""

    @abstractmethod
    def candidates(self, *, settle_seconds: float, fresh: bool = True) -> list[VersionCandidate]:
        """Every version of the app (numbered ascending, or the one flat version); [] when it has none.

        Numbered candidates may be remote (their ``path`` is not local): :meth:`fetch` one to load it.
        ``fresh=False`` may answer from a listing a few seconds old (status pages).
        """

    @abstractmethod
    def freeze(self) -> VersionCandidate:
        """Snapshot the flat files now, in the repository; the local snapshot's candidate.

        VersionNotFound when the app holds no model (and no handler).
        """

    @abstractmethod
    def fetch(self, version: str) -> VersionCandidate:
        """Exactly ``version``: a numbered folder, a snapshot, or flat files that hash to it (then frozen).

        VersionNotFound when the repository has no such complete version;
        RepositoryUnavailable when it cannot be asked and this host has no copy.
        """

    @abstractmethod
    def snapshot_candidates(self) -> list[VersionCandidate]:
        """The app's snapshots in the repository, newest first (for status pages: may be a few seconds old)."""

    @abstractmethod
    def is_snapshot(self, version: str) -> bool:
        """Whether ``version`` names a snapshot of this app (and no numbered folder)."""

    @abstractmethod
    def publish(self, staging: Path) -> int:
        """Make the validated version in the local folder ``staging`` the app's next numbered version."""

    @abstractmethod
    def prune(self, *, keep: set[str], keep_last: int) -> list[str]:
        """Remove the repository's snapshots not in ``keep`` beyond the newest ``keep_last``; the ids removed."""

    @abstractmethod
    def evict(self, *, keep: set[str]) -> list[str]:
        """Remove this host's cached copies of versions not in ``keep``; the ids removed."""

    @abstractmethod
    def declared(self) -> bool:
        """Whether the operator declared the app: an ``app.toml``, a model or a numbered folder."""

    def versions(self, *, settle_seconds: float) -> list[VersionCandidate]:
        """What a status page lists: the candidates, then the snapshots that are not one of them."""
        candidates = self.candidates(settle_seconds=settle_seconds, fresh=False)
        if any(c.numbered for c in candidates):
            return candidates
        known = {c.id for c in candidates}
        return candidates + [s for s in self.snapshot_candidates() if s.id not in known]


class Repository(ABC):
    """The apps of one model store."""

    location: str

    @abstractmethod
    def names(self) -> list[str]:
        """The valid app names in the repository now, sorted (may be a few seconds old)."""

    @abstractmethod
    def app(self, name: str) -> AppSource:
        """App ``name`` (present or not)."""

    def forget(self, name: str) -> None:
        """App ``name`` is gone: drop it from any listing kept for a few seconds."""


def open_repository(location: str | Path, *, cache_dir: Path | None = None) -> Repository:
    """The repository at ``location``: ``s3://bucket/prefix`` or a local folder (created when missing).

    ``cache_dir`` is where a remote repository's versions are kept on this host.
    """
    text = str(location)
    if text.startswith("s3://"):
        from .s3 import S3Repository  # boto3 only where it is used

        if cache_dir is None:
            raise ValueError("an s3:// model store needs a local cache folder")
        return S3Repository(text, cache_dir=Path(cache_dir))
    from .local import LocalRepository

    return LocalRepository(Path(location))
