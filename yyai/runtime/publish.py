"""Write a new numbered version into an app folder atomically.

A version is first staged in a hidden folder inside the app (``.staging-*``,
never scanned), then validated, then marked ``READY`` and renamed to the next
free number in one ``os.rename``: a scanner sees either no folder or a complete
one, never a half-written version. A failure removes the staging folder.

An upload never carries code: no ``.py`` (or other code) file, a manifest that
neither sets ``trust_code`` nor names a handler, and the version is marked
``UPLOADED``, so it loads in safe mode whatever the app's own manifest says and
its folder is never searched for a handler (:class:`yyai.runtime.model_util.ModelUtil`).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterable

from .errors import InputError, ManifestError
from .loader import MODEL_SUFFIXES
from .manifest import MANIFEST_NAME, parse_toml
from .source import READY_MARKER

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_FILES = 32
UPLOADED_MARKER = "UPLOADED"  # in a version folder: it came from an upload; never run code from it
CODE_SUFFIXES = (".py", ".pyc", ".pyw", ".pyz", ".so", ".pth")  # refused by name, with the reason


def stage_version(app_dir: Path, files: Iterable[tuple[str, BinaryIO]], manifest: bytes | None = None) -> Path:
    """Copy uploaded model files (and an optional app.toml) into a new staging folder."""
    files = list(files)
    names = [name for name, _ in files]
    if not names:
        raise InputError("no model files uploaded; send them in the repeatable field 'files'")
    if len(names) > MAX_FILES:
        raise InputError(f"{len(names)} files uploaded; at most {MAX_FILES} per version")
    for name in names:
        if Path(name).suffix.lower() in CODE_SUFFIXES:
            raise InputError(
                f"'{name}' is code, and an upload never carries code: a handler runs only from the "
                f"operator's disk (put it in the app folder by hand)"
            )
        if not SAFE_NAME.match(name) or Path(name).suffix not in MODEL_SUFFIXES:
            raise InputError(
                f"'{name}' is not an accepted model file name (letters, digits, . _ -; ending "
                f"{' or '.join(MODEL_SUFFIXES)})"
            )
    if len(set(names)) != len(names):
        raise InputError("two uploaded files have the same name")
    if manifest is not None:
        check_uploaded_manifest(manifest)
    app_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=app_dir))
    try:
        for name, stream in files:
            with (staging / name).open("wb") as out:
                shutil.copyfileobj(stream, out, 1 << 20)
        if manifest is not None:
            (staging / MANIFEST_NAME).write_bytes(manifest)
        (staging / UPLOADED_MARKER).touch()
    except BaseException:
        discard(staging)
        raise
    return staging


def check_uploaded_manifest(manifest: bytes) -> None:
    """InputError unless ``manifest`` is a valid app.toml that enables no code (``trust_code``, ``handler``)."""
    try:
        raw = parse_toml(manifest, source="the uploaded app.toml")
    except ManifestError as exc:
        raise InputError(exc.message) from None
    if raw.get("trust_code"):
        raise InputError(
            "an uploaded app.toml may not set trust_code: code runs only from the operator's disk "
            "(put the version in the model store by hand to trust its Lambda layers)"
        )
    if "handler" in raw:
        raise InputError(
            "an uploaded app.toml may not name a handler: code runs only from the operator's disk "
            "(name it in the app's own app.toml, next to the handler file)"
        )


def publish_version(app_dir: Path, staging: Path) -> int:
    """Mark ``staging`` READY and rename it to the next free version number; returns the number."""
    (staging / READY_MARKER).touch()
    for _ in range(100):
        number = 1 + max((int(p.name) for p in app_dir.iterdir() if p.is_dir() and p.name.isdigit()), default=0)
        target = app_dir / str(number)
        try:
            target.mkdir()  # claim the number; fails if another upload took it
        except FileExistsError:
            continue
        os.rename(staging, target)  # replaces the empty claimed folder in one step
        return number
    raise OSError(f"could not claim a version number in {app_dir}")


def discard(staging: Path) -> None:
    """Remove a staging folder and everything in it."""
    shutil.rmtree(staging, ignore_errors=True)
