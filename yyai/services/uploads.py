"""Uploads: a new numbered version, validated in a child process before it can serve."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import BinaryIO

from yyai.conf import yyai_settings
from yyai.fleet.process_registry import get_registry
from yyai.models import ReloadEvent
from yyai.runtime.errors import InputError, InvalidUpload, ServingError, storage_errors
from yyai.runtime.model_util import LATEST
from yyai.runtime.publish import discard, stage_version
from yyai.runtime.validate import validate_version
from yyai.services.reloads import ReloadOutcome, reload_app

# The server's own top-level routes: an app of one of these names would have its seed routes (/<app>/,
# /<app>_loadmodel/) shadowed. Refused at upload, reported at start-up (compared without case).
RESERVED_APP_NAMES = frozenset(
    {"admin", "api", "api-auth", "static", "media", "metrics", "healthz", "readyz", "samples", "v1", "v2"}
)


def reserved_name(app: str) -> bool:
    """Whether ``app`` is the name of one of the server's own routes."""
    return app.lower() in RESERVED_APP_NAMES


@dataclass(frozen=True)
class UploadResult:
    """A version written by :func:`upload_version`."""

    app: str
    version: int
    models: list[dict]
    reload: ReloadOutcome | None


def upload_version(
    *, app: str, files: list[tuple[str, BinaryIO]], manifest: bytes | None = None, activate: bool = True, user=None
) -> UploadResult:
    """Write a new numbered version of ``app`` (created if new), validated before it can serve.

    The files are staged in a hidden folder, loaded and warmed up in a child
    process under a memory and time limit, then published as the next version
    number in one rename. Invalid: InputError/ModelLoadError, nothing left on
    disk (not even the folder of an app the upload would have created).
    ``activate`` serves it at once everywhere (and removes a pin); otherwise it
    waits for the next reload.
    """
    if reserved_name(app):
        routes = ", ".join(sorted(RESERVED_APP_NAMES))
        raise InputError(
            f"'{app}' is the name of one of the server's own routes ({routes}): its seed routes "
            f"would be shadowed; choose another app name"
        )
    source = get_registry().source(app)
    app_dir = source.folder  # staged next to the app-level files (on a remote store: this host's cache)
    new_app = not app_dir.exists()
    staging = None
    published = False
    try:
        with storage_errors(app, "staging an upload of"):
            staging = stage_version(app_dir, files, manifest)
        try:
            models = validate_version(
                staging,
                app_dir=app_dir,
                timeout=yyai_settings.VALIDATE_TIMEOUT_SECONDS,
                memory_bytes=yyai_settings.VALIDATE_MEMORY_BYTES,
                max_file_bytes=yyai_settings.MAX_MODEL_FILE_BYTES,
                isolated=yyai_settings.VALIDATE_ISOLATED,
            )
        except ServingError as exc:
            raise InvalidUpload(f"the upload was refused and nothing was kept: {exc.message}") from exc
        with storage_errors(app, "publishing an upload of"):
            number = source.publish(staging)
        published = True
    finally:
        if staging is not None:
            discard(staging)  # gone already once published
        if new_app and not published:
            with contextlib.suppress(OSError):  # only if empty: a concurrent upload may be staging in it
                app_dir.rmdir()
    report = reload_app(app=app, version=LATEST, user=user, trigger=ReloadEvent.Trigger.UPLOAD) if activate else None
    return UploadResult(app=app, version=number, models=models, reload=report)
