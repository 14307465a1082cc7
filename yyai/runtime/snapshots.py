"""Immutable, content-addressed snapshots of a flat-layout app: what a reload loaded, by id.

The files of a flat app (its models, ``app.toml``, ``labels.txt`` and its handler file) may change
at any moment: a copy in progress, a stray file. So a reload first freezes the
exact bytes it is about to load into ``<app>/.snapshots/<id>/``, ``id`` being
their content hash (the flat layout's version id), and loads the snapshot;
every other process loads that id and never scans the folder again.

Files are cloned copy-on-write where the file system can (btrfs, XFS: the
``FICLONE`` ioctl) and copied otherwise. They are never hard-linked: the usual
way to swap weights, ``cp new.h5 model_store/<app>/m.h5``, rewrites the file in
place, and a hard-linked snapshot would change with it.

:func:`prune` removes the snapshots nobody needs, keeping the newest few for rollback.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import tempfile
import time
from pathlib import Path

from .errors import VersionNotFound
from .source import VersionCandidate, flat_id, handler_file, model_files, version_files

SNAPSHOTS = ".snapshots"
FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)
STALE_TEMP_SECONDS = 3600


def freeze(app_dir: Path) -> VersionCandidate:
    """Snapshot the app's flat files now; the snapshot's candidate (an existing one if the content is the same).

    VersionNotFound when the folder holds no model (and no handler).
    """
    app_dir = Path(app_dir)
    if not model_files(app_dir) and handler_file(app_dir) is None:
        raise VersionNotFound("no model files (.h5, .keras) or SavedModel folders found")
    root = app_dir / SNAPSHOTS
    root.mkdir(exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        for source in version_files(app_dir):
            if source.is_dir():
                shutil.copytree(
                    source,
                    staging / (source.name if source != app_dir else app_dir.name),
                    copy_function=_clone,
                    ignore=shutil.ignore_patterns(".*"),
                )
            else:
                _clone(source, staging / source.name)
        version = flat_id(staging)
        target = root / version
        try:
            os.rename(staging, target)
        except OSError as exc:  # the same content is frozen already (by us, or by another process)
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    os.utime(target)  # newest first when pruning
    return snapshot(app_dir, version)


def snapshot(app_dir: Path, version: str) -> VersionCandidate:
    """The candidate of snapshot ``version``; VersionNotFound if there is no such snapshot."""
    folder = Path(app_dir) / SNAPSHOTS / version
    hidden = version.startswith(".")
    files = model_files(folder) if not hidden else []
    if not files and (hidden or handler_file(folder) is None):
        raise VersionNotFound(f"there is no snapshot {version} of app '{Path(app_dir).name}'")
    return VersionCandidate(id=version, path=str(folder), files=tuple(map(str, files)), numbered=False, complete=True)


def snapshot_ids(app_dir: Path) -> list[str]:
    """The app's snapshots, newest first."""
    root = Path(app_dir) / SNAPSHOTS
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return [p.name for p in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)]


def prune(app_dir: Path, *, keep: set[str], keep_last: int) -> list[str]:
    """Remove the snapshots not in ``keep`` beyond the newest ``keep_last``, and stale staging folders.

    Returns the ids removed.
    """
    root = Path(app_dir) / SNAPSHOTS
    removed = []
    for index, version in enumerate(snapshot_ids(app_dir)):
        if version not in keep and index >= keep_last:
            shutil.rmtree(root / version, ignore_errors=True)
            removed.append(version)
    for staging in root.glob(".tmp-*") if root.is_dir() else []:
        if time.time() - staging.stat().st_mtime > STALE_TEMP_SECONDS:
            shutil.rmtree(staging, ignore_errors=True)
    return removed


def _clone(source: str | Path, target: str | Path) -> None:
    """A copy-on-write clone of ``source`` where the file system can make one, else a plain copy."""
    with open(source, "rb") as src, open(target, "wb") as dst:
        try:
            fcntl.ioctl(dst.fileno(), FICLONE, src.fileno())
        except OSError:
            shutil.copyfileobj(src, dst, 1 << 20)
    shutil.copystat(source, target)
