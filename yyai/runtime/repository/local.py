"""A model store on a local (or shared) file system: one folder per app, read in place.

Versions are the folders themselves; flat-layout snapshots live in the store
(``<app>/.snapshots/<id>/``, :mod:`yyai.runtime.snapshots`). A snapshot that is
gone (the folder was restored from a backup, or moved to a new volume, or the
host is new with its own copy) is taken again from the flat files when they
hash to the id asked for: the same files are the same version.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import VersionNotFound
from ..manifest import MANIFEST_NAME
from ..publish import publish_version
from ..snapshots import freeze, prune, snapshot, snapshot_ids
from ..source import VersionCandidate, flat_version_id, model_files, numbered_version, scan_versions
from . import APP_NAME, AppSource, Repository

log = logging.getLogger(__name__)


class LocalRepository(Repository):
    """Apps are the sub-folders of ``root`` with a valid app name."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.location = str(self.root)

    def names(self) -> list[str]:
        self.root.mkdir(parents=True, exist_ok=True)
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and APP_NAME.match(p.name))

    def app(self, name: str) -> "LocalApp":
        return LocalApp(self.root / name)


class LocalApp(AppSource):
    """One app folder, served in place."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.name = self.folder.name
        self.location = self.name

    def exists(self) -> bool:
        return self.folder.is_dir()

    def candidates(self, *, settle_seconds: float, fresh: bool = True) -> list[VersionCandidate]:
        return scan_versions(self.folder, settle_seconds=settle_seconds)

    def freeze(self) -> VersionCandidate:
        return freeze(self.folder)

    def fetch(self, version: str) -> VersionCandidate:
        folder = self.folder / version
        if version.isdigit() and folder.is_dir():
            candidate = numbered_version(folder, settle_seconds=0)
            if candidate.complete:
                return candidate
        if self.is_snapshot(version):
            return snapshot(self.folder, version)
        if flat_version_id(self.folder) == version:
            restored = freeze(self.folder)
            if restored.id == version:  # else the files changed while being frozen
                log.info(
                    "app %s: version %s taken again from its flat files (its snapshot was gone)", self.name, version
                )
                return restored
        raise VersionNotFound(
            f"version {version} of app '{self.name}' is not on disk (neither a numbered "
            f"folder nor a snapshot, and the flat files are another version)"
        )

    def snapshot_candidates(self) -> list[VersionCandidate]:
        return [snapshot(self.folder, s) for s in snapshot_ids(self.folder)]

    def is_snapshot(self, version: str) -> bool:
        return not (self.folder / version).is_dir() and version in snapshot_ids(self.folder)

    def publish(self, staging: Path) -> int:
        return publish_version(self.folder, staging)

    def prune(self, *, keep: set[str], keep_last: int) -> list[str]:
        return prune(self.folder, keep=keep, keep_last=keep_last)

    def evict(self, *, keep: set[str]) -> list[str]:
        return []  # served in place: nothing is cached

    def declared(self) -> bool:
        if (self.folder / MANIFEST_NAME).is_file() or model_files(self.folder):
            return True
        return self.folder.is_dir() and any(p.is_dir() and p.name.isdigit() for p in self.folder.iterdir())
