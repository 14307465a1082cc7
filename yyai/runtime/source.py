"""Find the versions of a model app on disk (TF Serving's "source").

Two layouts:

* numbered: ``<app>/<N>/`` folders, each one version; a folder counts only when
  complete, i.e. it holds a ``READY`` marker file, or none of its files has
  changed for ``settle_seconds`` (so a half-copied version is never served);
* flat (the seed's): model files directly in ``<app>/``; one version whose id is
  a short hash of the names and contents of the models, ``app.toml``,
  ``labels.txt`` and the handler file ``app.toml`` names (a reload freezes
  exactly those into a snapshot: snapshots.py).

An app with a handler may have no model at all (its handler does the work); a
version then needs only the handler file.

A model is a ``.h5`` / ``.keras`` file or a SavedModel folder (one holding
``saved_model.pb``); a SavedModel's contents count in its hash and settle time.
TF Serving's own layout works unchanged: a version folder that is itself a
SavedModel (``<app>/<N>/saved_model.pb``) is that version's one model.

When an app has any numbered folder, the numbered layout is used and loose
files in ``<app>/`` are ignored.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import ManifestError, VersionNotFound
from .limits import DEFAULT_SETTLE_SECONDS
from .loader import is_model_path
from .manifest import HANDLER, LABELS_NAME, MANIFEST_NAME, VersionsSpec, read_toml
from .saved_models import SAVED_MODEL_FILE
from .warmup import WARMUP_FILE

READY_MARKER = "READY"
MANIFEST_FILES = (MANIFEST_NAME, LABELS_NAME, WARMUP_FILE)  # part of a flat version: they say how its models serve


@dataclass(frozen=True)
class VersionCandidate:
    """One version found on disk."""

    id: str
    path: str
    files: tuple[str, ...]  # model file paths, sorted by file name
    numbered: bool
    complete: bool
    reason: str = ""  # why it is not complete, for status pages

    @property
    def number(self) -> int | None:
        return int(self.id) if self.numbered else None


def model_files(folder: Path) -> list[Path]:
    """The models (files and SavedModel folders) directly inside ``folder``, sorted by name.

    A folder that is itself a SavedModel is its own one model.
    """
    if not folder.is_dir():
        return []
    if (folder / SAVED_MODEL_FILE).is_file():
        return [folder]
    return sorted((p for p in folder.iterdir() if is_model_path(p)), key=lambda p: p.name)


def handler_file(folder: Path) -> Path | None:
    """The handler file ``folder/app.toml`` names, when both exist (an unreadable manifest names none)."""
    try:
        raw = read_toml(Path(folder) / MANIFEST_NAME)
    except (OSError, ManifestError):
        return None
    value = raw.get("handler")
    match = HANDLER.match(value) if isinstance(value, str) else None
    found = Path(folder) / match["file"] if match else None
    return found if found is not None and found.is_file() else None


def version_files(folder: Path) -> list[Path]:
    """What a flat version in ``folder`` is made of: its models, manifest files and handler file."""
    folder = Path(folder)
    handler = handler_file(folder)
    return [
        *model_files(folder),
        *(p for p in (folder / n for n in MANIFEST_FILES) if p.is_file()),
        *([handler] if handler else []),
    ]


def scan_versions(app_dir: Path, *, settle_seconds: float = DEFAULT_SETTLE_SECONDS) -> list[VersionCandidate]:
    """Every version of the app, numbered ones ascending; an empty list if there is none."""
    app_dir = Path(app_dir)
    numbered = sorted(
        (p for p in app_dir.iterdir() if p.is_dir() and p.name.isdigit()) if app_dir.is_dir() else [],
        key=lambda p: int(p.name),
    )
    if numbered:
        return [numbered_version(p, settle_seconds) for p in numbered]
    files = model_files(app_dir)
    if not files and handler_file(app_dir) is None:
        return []
    return [
        VersionCandidate(
            id=flat_id(app_dir), path=str(app_dir), files=tuple(map(str, files)), numbered=False, complete=True
        )
    ]


def flat_id(folder: Path) -> str:
    """The id of the flat version in ``folder``: the hash of the names and bytes of :func:`version_files`."""
    return _FINGERPRINTS.of(version_files(folder))


def flat_version_id(folder: Path) -> str | None:
    """The id of the flat version in ``folder``; None when it has numbered folders or nothing to serve."""
    return next((c.id for c in scan_versions(folder) if not c.numbered), None)


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def numbered_version(folder: Path, settle_seconds: float = DEFAULT_SETTLE_SECONDS) -> VersionCandidate:
    """The candidate of the numbered version folder ``folder`` (complete or not, with the reason)."""
    files = model_files(folder)
    reason = ""
    if not files and handler_file(folder) is None and handler_file(folder.parent) is None:
        reason = "no model files in the folder"
    elif not (folder / READY_MARKER).exists():
        age = time.time() - max(p.stat().st_mtime for p in folder.rglob("*"))
        if age < settle_seconds:
            reason = f"files changed {age:.1f}s ago; waiting {settle_seconds:g}s to settle (or add a READY file)"
    return VersionCandidate(
        id=folder.name,
        path=str(folder),
        files=tuple(map(str, files)),
        numbered=True,
        complete=not reason,
        reason=reason,
    )


def choose_version(
    candidates: list[VersionCandidate],
    *,
    policy: VersionsSpec,
    pinned: str | None = None,
) -> VersionCandidate:
    """The version that should serve: ``pinned`` if given, else the manifest's policy.

    ``latest`` is the highest complete version. Raises VersionNotFound when the
    wanted version is missing or incomplete, or when nothing is complete.
    """
    wanted = pinned if pinned is not None else (str(policy.specific) if policy.policy == "specific" else None)
    if wanted is not None:
        for candidate in candidates:
            if candidate.id == str(wanted):
                if not candidate.complete:
                    raise VersionNotFound(f"version {wanted} is not complete yet: {candidate.reason}")
                return candidate
        known = ", ".join(c.id for c in candidates) or "none"
        raise VersionNotFound(f"version {wanted} is not on disk (versions found: {known})")
    complete = [c for c in candidates if c.complete]
    if not complete:
        if candidates:
            raise VersionNotFound("no complete version yet: " + "; ".join(f"{c.id}: {c.reason}" for c in candidates))
        raise VersionNotFound("no model files (.h5, .keras) or SavedModel folders found")
    return complete[-1]


class _Fingerprints:
    """Content hashes of flat-layout files, cached by (path, size, mtime) so polls stay cheap."""

    def __init__(self):
        self._cache: dict[tuple[str, int, int], str] = {}
        self._lock = threading.Lock()

    def of(self, files: list[Path]) -> str:
        digest = hashlib.sha256()
        for path in files:
            digest.update(path.name.encode())
            digest.update(self._file(path).encode())
        return digest.hexdigest()[:12]

    def _file(self, path: Path) -> str:
        if path.is_dir():  # a SavedModel: the names and hashes of every file inside
            digest = hashlib.sha256()
            inside = (p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path)))
            for inner in sorted(inside):
                digest.update(str(inner.relative_to(path)).encode())
                digest.update(self._file(inner).encode())
            return digest.hexdigest()
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        found = file_sha256(path)
        with self._lock:
            self._cache[key] = found
        return found


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


_FINGERPRINTS = _Fingerprints()


def choose_candidate(source, policy: VersionsSpec, pinned: str | None, exact: str | None, settle_seconds: float):
    """Version ``exact`` of ``source`` (an AppSource) if given, else the pinned one or the policy's choice,
    fetched; a flat layout frozen into a snapshot. VersionNotFound when nothing complete is there (naming the
    loose files a numbered app ignores)."""
    if exact is not None or (pinned is not None and source.is_snapshot(pinned)):
        return source.fetch(exact if exact is not None else pinned)
    candidates = source.candidates(settle_seconds=settle_seconds)
    try:
        chosen = choose_version(candidates, policy=policy, pinned=pinned)
    except VersionNotFound as exc:
        loose = [p.name for p in model_files(source.folder)] if any(c.numbered for c in candidates) else []
        if loose:
            exc.message += (
                f"; the app's loose files ({', '.join(loose)}) are ignored once it has numbered "
                f"folders: move them into one (1/) to serve them as a version"
            )
            exc.args = (exc.message,)
        raise
    return source.fetch(chosen.id) if chosen.numbered else source.freeze()
