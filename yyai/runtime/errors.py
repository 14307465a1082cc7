"""Typed errors of the runtime.

Every error carries a stable ``code`` slug; the HTTP layer maps codes to
statuses, so the runtime knows nothing of HTTP.
"""

from __future__ import annotations

import contextlib
import errno
from pathlib import Path
from typing import Iterator


class ServingError(Exception):
    """Base of every error the runtime raises on purpose."""

    code = "serving_error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ManifestError(ServingError):
    """An ``app.toml`` is unreadable or holds an unknown key, wrong type or impossible value."""

    code = "invalid_manifest"


class ModelLoadError(ServingError):
    """A model file could not be loaded, compiled or warmed up."""

    code = "model_load_failed"

    def __init__(self, path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class HandlerLoadError(ServingError):
    """An app's handler could not be loaded: not allowed here, unreadable, not importable, or its setup failed."""

    code = "handler_load_failed"


class HandlerFailed(ServingError):
    """A hook of an app's handler raised (its trace is in the server log, never in the answer)."""

    code = "handler_failed"

    def __init__(self, app: str, hook: str):
        super().__init__(f"the handler of app '{app}' failed in its {hook} hook; the details are in the server log")
        self.app = app
        self.hook = hook


class InputError(ServingError):
    """The caller's input cannot be turned into a model input."""

    code = "bad_input"


class NotAnImage(InputError):
    """The bytes are not an image in a supported format (JPEG, PNG, BMP, WebP)."""

    code = "not_an_image"


class BadBase64(InputError):
    """A base64 field is not valid base64 or is longer than the limit allows."""

    code = "bad_base64"


class PayloadTooLarge(InputError):
    """The encoded input is larger than the configured byte limit."""

    code = "payload_too_large"


class ImageTooLarge(InputError):
    """The image has more pixels than the configured limit."""

    code = "image_too_large"


class BadTensor(InputError):
    """A ready tensor has the wrong shape or values for the app's models."""

    code = "bad_tensor_shape"


class ModelRejectedInput(InputError):
    """The model itself refused a request's rows while running them (TensorFlow's InvalidArgumentError and
    kin: a token id past an Embedding's table, bytes its own ``decode_jpeg`` cannot decode): the caller's error."""

    code = "model_rejected_input"


class InvalidUpload(InputError):
    """Uploaded model files failed validation; nothing was kept."""

    code = "invalid_upload"


class AppNotFound(ServingError):
    """No model app of that name exists in the model store."""

    code = "app_not_found"


class NoModel(AppNotFound):
    """The app has a handler and no model: nothing to address with tensors (only its predict route answers)."""

    code = "no_model"


class AppNotAvailable(ServingError):
    """The app exists but has no AVAILABLE version (loading, or every load failed); retry after
    ``retry_after`` seconds."""

    code = "app_not_available"

    def __init__(self, message: str, retry_after: int = 5):
        super().__init__(message)
        self.retry_after = retry_after


class VersionNotFound(ServingError):
    """The requested version is not on disk, or not complete."""

    code = "version_not_found"


class RepositoryUnavailable(ServingError):
    """The model repository (an S3 bucket) cannot be reached, refused access, or sent a file that failed its
    size or checksum check: nothing was kept, what serves keeps serving; retry after ``retry_after`` seconds."""

    code = "repository_unavailable"

    def __init__(self, message: str, retry_after: int = 5):
        super().__init__(message)
        self.retry_after = retry_after


class StorageFull(ServingError):
    """The disk filled up while writing a version (a snapshot, an upload, a download into the cache)."""

    code = "insufficient_storage"


@contextlib.contextmanager
def storage_errors(app: str, doing: str) -> Iterator[None]:
    """A full disk (ENOSPC, EDQUOT) while ``doing`` for ``app`` becomes :class:`StorageFull`; every writer
    stages in a folder of its own and removes it on failure, so nothing is left half-written."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise StorageFull(
            f"no space left on the device while {doing} app '{app}': nothing was half-written, "
            f"and what serves keeps serving"
        ) from None


class ReloadInProgress(ServingError):
    """A reload of this app is already running and the caller chose not to wait."""

    code = "reload_in_progress"


class ReloadSuperseded(ServingError):
    """A newer reload changed the app's target before every process served this one's version."""

    code = "reload_superseded"


class Overloaded(ServingError):
    """The app's request queue is full; retry after ``retry_after`` seconds."""

    code = "overloaded"

    def __init__(self, message: str, retry_after: int = 1):
        super().__init__(message)
        self.retry_after = retry_after


def store_relative(exc: ServingError, store: Path) -> None:
    """Name files by their place in the model store (``calc/m.h5``), never by their absolute path."""
    prefix = f"{store}/"
    exc.message = exc.message.replace(prefix, "")
    exc.args = (exc.message, *exc.args[1:])
    if isinstance(exc, ModelLoadError):
        exc.path = exc.path.replace(prefix, "")
