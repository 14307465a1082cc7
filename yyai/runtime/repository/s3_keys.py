"""How an app's keys in the bucket map onto the layout (keys relative to ``<app>/``): numbered folders, the
snapshots complete in the bucket, the models inside a version, and the keys never to be followed."""

from __future__ import annotations

from pathlib import PurePosixPath

from ..loader import MODEL_SUFFIXES
from ..saved_models import SAVED_MODEL_FILE
from ..snapshots import SNAPSHOTS
from .bucket import RemoteObject

MANIFEST = ".manifest.json"  # a snapshot's files, sizes and SHA-256; written last: the snapshot is complete
UPLOADING = ".uploading"  # a numbered folder an upload is still writing (never complete before its READY)


def safe(key: str) -> bool:
    """A key that names a file inside its folder: no empty, ``.`` or ``..`` segment, no folder marker."""
    parts = key.split("/")
    return bool(key) and "\x00" not in key and all(p not in ("", ".", "..") for p in parts)


def hidden(key: str) -> bool:
    return any(part.startswith(".") for part in PurePosixPath(key).parts)


def top_level(key: str) -> bool:
    """Part of the app's mirror: not inside a numbered folder, nothing hidden."""
    return not key.split("/")[0].isdigit() and not hidden(key)


def numbered_folders(objects: list[RemoteObject]) -> dict[str, list[RemoteObject]]:
    """Numbered folder -> its objects (keys relative to the folder)."""
    found: dict[str, list[RemoteObject]] = {}
    for obj in objects:
        head, _, rest = obj.key.partition("/")
        if head.isdigit() and rest:
            found.setdefault(head, []).append(RemoteObject(rest, obj.size, obj.etag, obj.modified))
    return found


def snapshot_manifests(objects: list[RemoteObject]) -> dict[str, RemoteObject]:
    """Snapshot id -> its manifest object: the snapshots complete in the bucket."""
    found = {}
    for obj in objects:
        parts = obj.key.split("/")
        if len(parts) == 3 and parts[0] == SNAPSHOTS and parts[2] == MANIFEST and not parts[1].startswith("."):
            found[parts[1]] = obj
    return found


def model_of(key: str) -> str | None:
    """The model a key inside a version folder belongs to: a file's name, a SavedModel's folder (``.``: the
    version folder is one), or None."""
    parts = key.split("/")
    if len(parts) == 1:
        return "." if parts[0] == SAVED_MODEL_FILE else (parts[0] if parts[0].endswith(MODEL_SUFFIXES) else None)
    return parts[0] if len(parts) == 2 and parts[1] == SAVED_MODEL_FILE else None
