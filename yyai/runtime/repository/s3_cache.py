"""This host's copies of an S3 app (``<cache>/<app>/``): the mirror of the app's top level, the versions it
fetched (``.versions/<N>/``) and the snapshots (``.snapshots/<id>/``); each installed whole or not at all,
shared by the host's processes under a per-app file lock."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator

from ..errors import VersionNotFound
from ..snapshots import SNAPSHOTS, STALE_TEMP_SECONDS, snapshot
from ..source import VersionCandidate, model_files
from .bucket import Bucket, RemoteObject
from .s3_keys import top_level

VERSIONS = ".versions"  # this host's copies of numbered versions
MIRROR_STATE = ".mirror.json"  # what the mirror holds: key -> [size, ETag]


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """This app's cache, for this process alone among the processes of the host."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def mirror(bucket: Bucket, app: str, folder: Path, objects: list[RemoteObject]) -> None:
    """Bring the local mirror of the app's top level up to date with ``objects`` (caller holds the lock)."""
    wanted = {o.key: o for o in objects if top_level(o.key)}
    state_file = folder / MIRROR_STATE
    state = read_json(state_file) or {}
    for key, obj in wanted.items():
        local = folder / key
        if state.get(key) == [obj.size, obj.etag] and local.is_file() and local.stat().st_size == obj.size:
            continue
        partial = folder / f".tmp-{uuid.uuid4().hex}"
        bucket.download(RemoteObject(f"{app}/{key}", obj.size, obj.etag), partial)
        local.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial, local)
        state[key] = [obj.size, obj.etag]
        write_json(state_file, state)
    for key in sorted(set(state) - set(wanted)):
        (folder / key).unlink(missing_ok=True)
        del state[key]
        for parent in (folder / key).parents:
            if parent == folder or any(parent.iterdir()):
                break
            parent.rmdir()
    write_json(state_file, state)


def install(
    bucket: Bucket,
    app: str,
    target: Path,
    plan: list[tuple[str, str, int, str, str | None]],
    *,
    check: Callable[[Path], None] | None = None,
) -> None:
    """Download ``plan`` (key under the app, path in the version, size, ETag, SHA-256 or None) into a
    staging folder, ``check`` it, then rename it to ``target`` in one step."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        for key, rel, size, etag, sha256 in plan:
            dest = staging / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            bucket.download(RemoteObject(f"{app}/{key}", size, etag), dest, sha256=sha256)
        if check is not None:
            check(staging)
        if target.exists():  # a stale copy (the folder was rewritten in the bucket)
            aside = target.with_name(f".old-{uuid.uuid4().hex}")
            os.rename(target, aside)
            shutil.rmtree(aside, ignore_errors=True)
        os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def cached(folder: Path, version: str) -> VersionCandidate | None:
    """This host's complete copy of ``version``, if it has one."""
    numbered = folder / VERSIONS / version
    if version.isdigit() and numbered.is_dir():
        return local_numbered(numbered)
    try:
        return snapshot(folder, version)
    except VersionNotFound:
        return None


def evict(folder: Path, *, keep: set[str]) -> list[str]:
    """Remove the cached versions and snapshots not in ``keep`` (and staging folders left behind); their ids."""
    removed = []
    with locked(folder):
        for root in (folder / VERSIONS, folder / SNAPSHOTS):
            for path in root.iterdir() if root.is_dir() else []:
                stale = path.name.startswith(".") and time.time() - path.stat().st_mtime > STALE_TEMP_SECONDS
                if path.is_dir() and ((not path.name.startswith(".") and path.name not in keep) or stale):
                    shutil.rmtree(path, ignore_errors=True)
                    path.with_name(f"{path.name}.json").unlink(missing_ok=True)
                    removed += [] if stale else [path.name]
    return removed


def local_numbered(folder: Path) -> VersionCandidate:
    return VersionCandidate(
        id=folder.name, path=str(folder), files=tuple(map(str, model_files(folder))), numbered=True, complete=True
    )


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, value) -> None:
    partial = path.with_name(f".tmp-{uuid.uuid4().hex}")
    partial.write_text(json.dumps(value, sort_keys=True))
    os.replace(partial, path)
