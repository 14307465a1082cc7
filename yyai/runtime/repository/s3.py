"""A model store in an S3 bucket (``s3://bucket/prefix``), the same layout as on disk, cached on each host.

``<prefix>/<app>/`` holds what a local app folder holds: flat files, numbered
folders (``<N>/``, complete with a ``READY`` object or once unchanged for the
settle period), SavedModel folders, ``app.toml``. This host keeps, in
``<cache>/<app>/``:

* a mirror of the app's top level (everything but numbered folders and hidden
  ones): its manifest, labels, handler and sample, and the flat layout's
  models, downloaded only when their ETag changed;
* ``.versions/<N>/``: the numbered versions it fetched; ``.snapshots/<id>/``:
  the snapshots it fetched or froze.

A copy is checked while it streams (:meth:`Bucket.download`), gathered in a
hidden staging folder and renamed into place only when whole, so a partial
download is never served. A flat layout is frozen from the mirror and the
snapshot is uploaded to ``<app>/.snapshots/<id>/`` with a ``.manifest.json``
(each file's size and SHA-256) written last: every other host fetches it from
there and checks it file by file and against its id. When the bucket cannot
be reached, a version already cached on this host is served from the cache; a
version the bucket no longer holds is gone, even where a cache still has it.
Processes of one host share the cache under a per-app file lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

from ..errors import RepositoryUnavailable, VersionNotFound
from ..loader import MODEL_SUFFIXES
from ..manifest import MANIFEST_NAME
from ..saved_models import SAVED_MODEL_FILE
from ..snapshots import SNAPSHOTS, STALE_TEMP_SECONDS, freeze, snapshot
from ..source import READY_MARKER, VersionCandidate, file_sha256, flat_version_id, model_files, scan_versions
from . import APP_NAME, AppSource, Repository
from .bucket import Bucket, RemoteObject, parse_url

log = logging.getLogger(__name__)

VERSIONS = ".versions"  # this host's copies of numbered versions
MANIFEST = ".manifest.json"  # a snapshot's files, sizes and SHA-256; written last: the snapshot is complete
UPLOADING = ".uploading"  # a numbered folder an upload is still writing (never complete before its READY)
MIRROR_STATE = ".mirror.json"  # what the mirror holds: key -> [size, ETag]
LISTING_SECONDS = 5.0  # how old a listing status pages and app names may be


class S3Repository(Repository):
    """The apps under ``s3://bucket/prefix``, cached in ``cache_dir``."""

    def __init__(self, url: str, *, cache_dir: Path, client=None):
        bucket, prefix = parse_url(url)
        self.bucket = Bucket(bucket, prefix, client)
        self.cache_dir = Path(cache_dir)
        self.location = self.bucket.url()
        self._names: tuple[float, list[str]] | None = None

    def names(self) -> list[str]:
        if self._names is not None and time.monotonic() - self._names[0] < LISTING_SECONDS:
            return self._names[1]
        try:
            found = sorted(n for n in self.bucket.folders() if APP_NAME.match(n))
        except RepositoryUnavailable as exc:
            cached = (
                self._names[1]
                if self._names
                else sorted(p.name for p in self.cache_dir.glob("*") if p.is_dir() and APP_NAME.match(p.name))
            )
            log.warning("%s; listing the apps this host knows: %s", exc.message, ", ".join(cached) or "none")
            return cached
        self._names = (time.monotonic(), found)
        return found

    def forget(self, name: str) -> None:
        if self._names is not None:
            self._names = (self._names[0], [n for n in self._names[1] if n != name])

    def app(self, name: str) -> "S3App":
        return S3App(self.bucket, name, self.cache_dir / name)


class S3App(AppSource):
    """One app under the bucket's prefix, mirrored into ``folder``."""

    def __init__(self, bucket: Bucket, name: str, folder: Path):
        self.bucket = bucket
        self.name = name
        self.folder = Path(folder)
        self.location = bucket.url(f"{name}/")
        self._listing: tuple[float, list[RemoteObject]] | None = None

    # -- listing ----------------------------------------------------------
    def _objects(self, *, fresh: bool = True) -> list[RemoteObject]:
        """The app's objects (keys relative to ``<app>/``; unsafe keys left out)."""
        if fresh or self._listing is None or time.monotonic() - self._listing[0] > LISTING_SECONDS:
            objects = [o for o in self.bucket.list(f"{self.name}/") if _safe(o.key)]
            self._listing = (time.monotonic(), objects)
        return self._listing[1]

    def exists(self) -> bool:
        return any(not _hidden(o.key) for o in self._objects())

    def declared(self) -> bool:
        try:
            return any(not _hidden(o.key) for o in self._objects(fresh=False))
        except RepositoryUnavailable:
            return (self.folder / MANIFEST_NAME).is_file() or bool(model_files(self.folder))

    def candidates(self, *, settle_seconds: float, fresh: bool = True) -> list[VersionCandidate]:
        objects = self._objects(fresh=fresh)
        numbered = _numbered(objects)
        if numbered:
            return [self._remote_candidate(n, numbered[n], settle_seconds) for n in sorted(numbered, key=int)]
        if fresh:
            with self._locked():
                self._mirror(objects)
        return scan_versions(self.folder, settle_seconds=settle_seconds)

    def _remote_candidate(self, number: str, objects: list[RemoteObject], settle_seconds: float) -> VersionCandidate:
        inside = {o.key for o in objects}
        models = sorted({_model_of(key) for key in inside} - {None})
        reason = ""
        if not models and MANIFEST_NAME not in inside and not (self.folder / MANIFEST_NAME).is_file():
            reason = "no model files in the folder"
        elif READY_MARKER not in inside:
            age = time.time() - max(o.modified for o in objects)
            if UPLOADING in inside:
                reason = "an upload is still writing it"
            elif age < settle_seconds:
                reason = f"files changed {age:.1f}s ago; waiting {settle_seconds:g}s to settle (or add a READY file)"
        return VersionCandidate(
            id=number,
            path=self.bucket.url(f"{self.name}/{number}/"),
            files=tuple(self.bucket.url(f"{self.name}/{number}/{m}") for m in models),
            numbered=True,
            complete=not reason,
            reason=reason,
        )

    def snapshot_candidates(self) -> list[VersionCandidate]:
        manifests = sorted(_snapshot_manifests(self._objects(fresh=False)).items(), key=lambda i: -i[1].modified)
        return [
            VersionCandidate(
                id=version,
                path=self.bucket.url(f"{self.name}/{SNAPSHOTS}/{version}/"),
                files=(),
                numbered=False,
                complete=True,
            )
            for version, _ in manifests
        ]

    def is_snapshot(self, version: str) -> bool:
        objects = self._objects(fresh=False)
        return version not in _numbered(objects) and version in _snapshot_manifests(objects)

    # -- fetching ---------------------------------------------------------
    def fetch(self, version: str) -> VersionCandidate:
        with self._locked():
            try:
                objects = self._objects()
            except RepositoryUnavailable as exc:
                cached = self._cached(version)
                if cached is None:
                    raise
                log.warning("app %s: %s; serving version %s from this host's cache", self.name, exc.message, version)
                return cached
            self._mirror(objects)
            numbered = _numbered(objects)
            if version in numbered:
                return self._fetch_numbered(version, numbered[version])
            if version in _snapshot_manifests(objects):
                return self._fetch_snapshot(version)
            if not numbered and flat_version_id(self.folder) == version:
                return self._freeze_locked()  # the same files restored: the same version, its snapshot again
        raise VersionNotFound(
            f"version {version} of app '{self.name}' is not in {self.location} (neither a "
            f"numbered folder, nor a snapshot, nor the flat files)"
        )

    def _cached(self, version: str) -> VersionCandidate | None:
        """This host's complete copy of ``version``, if it has one."""
        folder = self.folder / VERSIONS / version
        if version.isdigit() and folder.is_dir():
            return _local_numbered(folder)
        try:
            return snapshot(self.folder, version)
        except VersionNotFound:
            return None

    def _fetch_numbered(self, number: str, objects: list[RemoteObject]) -> VersionCandidate:
        target = self.folder / VERSIONS / number
        record = target.with_name(f"{number}.json")
        listed = {o.key: [o.size, o.etag] for o in objects}
        if not (target.is_dir() and _read_json(record) == listed):
            self._install(target, [(f"{number}/{o.key}", o.key, o.size, o.etag, None) for o in objects])
            _write_json(record, listed)
        return _local_numbered(target)

    def _fetch_snapshot(self, version: str) -> VersionCandidate:
        target = self.folder / SNAPSHOTS / version
        if not target.is_dir():
            raw = self.bucket.read(f"{self.name}/{SNAPSHOTS}/{version}/{MANIFEST}")
            try:
                files = json.loads(raw or b"")["files"]
                plan = [
                    (f"{SNAPSHOTS}/{version}/{rel}", rel, int(meta["size"]), "", str(meta["sha256"]))
                    for rel, meta in files.items()
                    if _safe(rel)
                ]
            except (ValueError, KeyError, TypeError, AttributeError):
                raise RepositoryUnavailable(
                    f"the manifest of snapshot {version} in {self.location} is unreadable; nothing was kept"
                ) from None

            def hashes_to_its_id(staging: Path) -> None:
                found = flat_version_id(staging)
                if found != version:
                    raise RepositoryUnavailable(
                        f"snapshot {version} in {self.location} holds files that hash to "
                        f"{found}, not to its id; nothing was kept"
                    )

            self._install(target, plan, check=hashes_to_its_id)
        return snapshot(self.folder, version)

    def _install(
        self,
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
                self.bucket.download(RemoteObject(f"{self.name}/{key}", size, etag), dest, sha256=sha256)
            if check is not None:
                check(staging)
            if target.exists():  # a stale copy (the folder was rewritten in the bucket)
                aside = target.with_name(f".old-{uuid.uuid4().hex}")
                os.rename(target, aside)
                shutil.rmtree(aside, ignore_errors=True)
            os.rename(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _mirror(self, objects: list[RemoteObject]) -> None:
        """Bring the local mirror of the app's top level up to date with ``objects`` (caller holds the lock)."""
        wanted = {o.key: o for o in objects if _top_level(o.key)}
        state_file = self.folder / MIRROR_STATE
        state = _read_json(state_file) or {}
        for key, obj in wanted.items():
            local = self.folder / key
            if state.get(key) == [obj.size, obj.etag] and local.is_file() and local.stat().st_size == obj.size:
                continue
            partial = self.folder / f".tmp-{uuid.uuid4().hex}"
            self.bucket.download(RemoteObject(f"{self.name}/{key}", obj.size, obj.etag), partial)
            local.parent.mkdir(parents=True, exist_ok=True)
            os.replace(partial, local)
            state[key] = [obj.size, obj.etag]
            _write_json(state_file, state)
        for key in sorted(set(state) - set(wanted)):
            (self.folder / key).unlink(missing_ok=True)
            del state[key]
            for parent in (self.folder / key).parents:
                if parent == self.folder or any(parent.iterdir()):
                    break
                parent.rmdir()
        _write_json(state_file, state)

    # -- writing ----------------------------------------------------------
    def freeze(self) -> VersionCandidate:
        with self._locked():
            self._mirror(self._objects())
            return self._freeze_locked()

    def _freeze_locked(self) -> VersionCandidate:
        candidate = freeze(self.folder)
        if candidate.id not in _snapshot_manifests(self._objects()):
            self._upload_snapshot(Path(candidate.path), candidate.id)
        return candidate

    def _upload_snapshot(self, folder: Path, version: str) -> None:
        """Upload the local snapshot ``folder``, then its manifest: only then is it complete in the bucket."""
        files = {}
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            rel = path.relative_to(folder).as_posix()
            files[rel] = {"size": path.stat().st_size, "sha256": file_sha256(path)}
            self.bucket.upload(path, f"{self.name}/{SNAPSHOTS}/{version}/{rel}")
        self.bucket.put(f"{self.name}/{SNAPSHOTS}/{version}/{MANIFEST}", json.dumps({"files": files}).encode())
        self._listing = None

    def publish(self, staging: Path) -> int:
        """Claim the next number with a conditional write, upload the files, then ``READY``."""
        for _ in range(100):
            number = 1 + max(map(int, _numbered(self._objects())), default=0)
            if self.bucket.put(f"{self.name}/{number}/{UPLOADING}", b"", if_absent=True):
                break
        else:
            raise RepositoryUnavailable(f"could not claim a version number in {self.location}")
        written = []
        try:
            for path in sorted(p for p in Path(staging).rglob("*") if p.is_file() and p.name != READY_MARKER):
                key = f"{self.name}/{number}/{path.relative_to(staging).as_posix()}"
                self.bucket.upload(path, key)
                written.append(key)
            self.bucket.put(f"{self.name}/{number}/{READY_MARKER}", b"")
        except BaseException:
            with contextlib.suppress(RepositoryUnavailable):
                self.bucket.delete(written)  # the claim stays: the number is never complete, never reused
            raise
        self.bucket.delete([f"{self.name}/{number}/{UPLOADING}"])
        self._listing = None
        return number

    def prune(self, *, keep: set[str], keep_last: int) -> list[str]:
        objects = self._objects()
        newest_first = sorted(_snapshot_manifests(objects).items(), key=lambda i: -i[1].modified)
        removed = [v for i, (v, _) in enumerate(newest_first) if v not in keep and i >= keep_last]
        if removed:  # the manifest first: a snapshot without one is not complete, so never half-fetched
            self.bucket.delete([f"{self.name}/{SNAPSHOTS}/{v}/{MANIFEST}" for v in removed])
            self.bucket.delete(
                [
                    f"{self.name}/{o.key}"
                    for o in objects
                    if o.key.split("/")[0] == SNAPSHOTS and o.key.split("/")[1] in removed
                ]
            )
            self._listing = None
        return removed

    def evict(self, *, keep: set[str]) -> list[str]:
        removed = []
        with self._locked():
            for root in (self.folder / VERSIONS, self.folder / SNAPSHOTS):
                for path in root.iterdir() if root.is_dir() else []:
                    stale = path.name.startswith(".") and time.time() - path.stat().st_mtime > STALE_TEMP_SECONDS
                    if path.is_dir() and ((not path.name.startswith(".") and path.name not in keep) or stale):
                        shutil.rmtree(path, ignore_errors=True)
                        path.with_name(f"{path.name}.json").unlink(missing_ok=True)
                        removed += [] if stale else [path.name]
        return removed

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """This app's cache, for this process alone among the processes of the host."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _safe(key: str) -> bool:
    """A key that names a file inside its folder: no empty, ``.`` or ``..`` segment, no folder marker."""
    parts = key.split("/")
    return bool(key) and "\x00" not in key and all(p not in ("", ".", "..") for p in parts)


def _hidden(key: str) -> bool:
    return any(part.startswith(".") for part in PurePosixPath(key).parts)


def _top_level(key: str) -> bool:
    """Part of the app's mirror: not inside a numbered folder, nothing hidden."""
    return not key.split("/")[0].isdigit() and not _hidden(key)


def _numbered(objects: list[RemoteObject]) -> dict[str, list[RemoteObject]]:
    """Numbered folder -> its objects (keys relative to the folder)."""
    found: dict[str, list[RemoteObject]] = {}
    for obj in objects:
        head, _, rest = obj.key.partition("/")
        if head.isdigit() and rest:
            found.setdefault(head, []).append(RemoteObject(rest, obj.size, obj.etag, obj.modified))
    return found


def _snapshot_manifests(objects: list[RemoteObject]) -> dict[str, RemoteObject]:
    """Snapshot id -> its manifest object: the snapshots complete in the bucket."""
    found = {}
    for obj in objects:
        parts = obj.key.split("/")
        if len(parts) == 3 and parts[0] == SNAPSHOTS and parts[2] == MANIFEST and not parts[1].startswith("."):
            found[parts[1]] = obj
    return found


def _model_of(key: str) -> str | None:
    """The model a key inside a version folder belongs to: a file's name, a SavedModel's folder (``.``: the
    version folder is one), or None."""
    parts = key.split("/")
    if len(parts) == 1:
        return "." if parts[0] == SAVED_MODEL_FILE else (parts[0] if parts[0].endswith(MODEL_SUFFIXES) else None)
    return parts[0] if len(parts) == 2 and parts[1] == SAVED_MODEL_FILE else None


def _local_numbered(folder: Path) -> VersionCandidate:
    return VersionCandidate(
        id=folder.name, path=str(folder), files=tuple(map(str, model_files(folder))), numbered=True, complete=True
    )


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, value) -> None:
    partial = path.with_name(f".tmp-{uuid.uuid4().hex}")
    partial.write_text(json.dumps(value, sort_keys=True))
    os.replace(partial, path)
