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
import json
import logging
import time
from pathlib import Path

from ..errors import RepositoryUnavailable, VersionNotFound
from ..manifest import MANIFEST_NAME
from ..snapshots import SNAPSHOTS, freeze, snapshot
from ..source import READY_MARKER, VersionCandidate, file_sha256, flat_version_id, model_files, scan_versions
from . import APP_NAME, AppSource, Repository
from . import s3_cache as cache
from .bucket import Bucket, RemoteObject, parse_url
from .s3_keys import MANIFEST, UPLOADING, hidden, model_of, numbered_folders, safe, snapshot_manifests

log = logging.getLogger(__name__)

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
            objects = [o for o in self.bucket.list(f"{self.name}/") if safe(o.key)]
            self._listing = (time.monotonic(), objects)
        return self._listing[1]

    def exists(self) -> bool:
        return any(not hidden(o.key) for o in self._objects())

    def declared(self) -> bool:
        try:
            return any(not hidden(o.key) for o in self._objects(fresh=False))
        except RepositoryUnavailable:
            return (self.folder / MANIFEST_NAME).is_file() or bool(model_files(self.folder))

    def candidates(self, *, settle_seconds: float, fresh: bool = True) -> list[VersionCandidate]:
        objects = self._objects(fresh=fresh)
        numbered = numbered_folders(objects)
        if numbered:
            return [self._remote_candidate(n, numbered[n], settle_seconds) for n in sorted(numbered, key=int)]
        if fresh:
            with cache.locked(self.folder):
                cache.mirror(self.bucket, self.name, self.folder, objects)
        return scan_versions(self.folder, settle_seconds=settle_seconds)

    def _remote_candidate(self, number: str, objects: list[RemoteObject], settle_seconds: float) -> VersionCandidate:
        inside = {o.key for o in objects}
        models = sorted({model_of(key) for key in inside} - {None})
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
        manifests = sorted(snapshot_manifests(self._objects(fresh=False)).items(), key=lambda i: -i[1].modified)
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
        return version not in numbered_folders(objects) and version in snapshot_manifests(objects)

    # -- fetching ---------------------------------------------------------
    def fetch(self, version: str) -> VersionCandidate:
        with cache.locked(self.folder):
            try:
                objects = self._objects()
            except RepositoryUnavailable as exc:
                cached = cache.cached(self.folder, version)
                if cached is None:
                    raise
                log.warning("app %s: %s; serving version %s from this host's cache", self.name, exc.message, version)
                return cached
            cache.mirror(self.bucket, self.name, self.folder, objects)
            numbered = numbered_folders(objects)
            if version in numbered:
                return self._fetch_numbered(version, numbered[version])
            if version in snapshot_manifests(objects):
                return self._fetch_snapshot(version)
            if not numbered and flat_version_id(self.folder) == version:
                return self._freeze_locked()  # the same files restored: the same version, its snapshot again
        raise VersionNotFound(
            f"version {version} of app '{self.name}' is not in {self.location} (neither a "
            f"numbered folder, nor a snapshot, nor the flat files)"
        )

    def _fetch_numbered(self, number: str, objects: list[RemoteObject]) -> VersionCandidate:
        target = self.folder / cache.VERSIONS / number
        record = target.with_name(f"{number}.json")
        listed = {o.key: [o.size, o.etag] for o in objects}
        if not (target.is_dir() and cache.read_json(record) == listed):
            cache.install(
                self.bucket, self.name, target, [(f"{number}/{o.key}", o.key, o.size, o.etag, None) for o in objects]
            )
            cache.write_json(record, listed)
        return cache.local_numbered(target)

    def _fetch_snapshot(self, version: str) -> VersionCandidate:
        target = self.folder / SNAPSHOTS / version
        if not target.is_dir():
            raw = self.bucket.read(f"{self.name}/{SNAPSHOTS}/{version}/{MANIFEST}")
            try:
                files = json.loads(raw or b"")["files"]
                plan = [
                    (f"{SNAPSHOTS}/{version}/{rel}", rel, int(meta["size"]), "", str(meta["sha256"]))
                    for rel, meta in files.items()
                    if safe(rel)
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

            cache.install(self.bucket, self.name, target, plan, check=hashes_to_its_id)
        return snapshot(self.folder, version)

    # -- writing ----------------------------------------------------------
    def freeze(self) -> VersionCandidate:
        with cache.locked(self.folder):
            cache.mirror(self.bucket, self.name, self.folder, self._objects())
            return self._freeze_locked()

    def _freeze_locked(self) -> VersionCandidate:
        candidate = freeze(self.folder)
        if candidate.id not in snapshot_manifests(self._objects()):
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
            number = 1 + max(map(int, numbered_folders(self._objects())), default=0)
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
        newest_first = sorted(snapshot_manifests(objects).items(), key=lambda i: -i[1].modified)
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
        return cache.evict(self.folder, keep=keep)
