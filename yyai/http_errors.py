"""What a failure means over HTTP: one mapping from an exception to (status, code, message, headers).

Free of Django. Every entry path (the DRF views, the protocol views, gRPC, the
fast path) asks :func:`failure_of` and only formats the body; the error format
of the canonical API is :func:`error_body`. Runtime errors carry a code and this
module gives the code its status. Nothing here ever puts a stack trace in an
answer: an exception it does not know is a bug, answered as
:data:`INTERNAL` by the caller, with the trace in the server log.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from yyai.runtime.errors import AppNotAvailable, Overloaded, RepositoryUnavailable, ServingError

STATUS_BY_CODE = {
    "bad_input": 400,
    "bad_base64": 400,
    "bad_tensor_shape": 400,
    "model_rejected_input": 400,
    "invalid_upload": 400,
    "not_an_image": 415,
    "image_too_large": 413,
    "payload_too_large": 413,
    "app_not_found": 404,
    "no_model": 404,
    "version_not_found": 404,
    "app_not_available": 503,
    "memory_budget_full": 503,
    "repository_unavailable": 503,
    "insufficient_storage": 507,
    "overloaded": 503,
    "reload_in_progress": 409,
    "reload_superseded": 409,
    "model_load_failed": 422,
    "invalid_manifest": 422,
    "handler_load_failed": 422,
    "handler_failed": 500,
}

INTERNAL_ERROR = "internal server error; the details are in the server log"  # never the trace itself


@dataclass(frozen=True)
class Failure:
    """A known failure as HTTP sees it."""

    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict:
        """The canonical error format."""
        return error_body(self.message, self.code)


class ApiError(Exception):
    """A request the API layer itself refuses, with its own status and code (the runtime knows nothing of it)."""

    def __init__(self, message: str, *, code: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


def error_body(message: str, code: str) -> dict:
    """The canonical error; a message that quotes the caller's text keeps what UTF-8 cannot carry (a lone
    surrogate) as an escape, so that the answer can always be written."""
    return {"error": message.encode("utf-8", "backslashreplace").decode("utf-8"), "code": code}


INTERNAL = Failure(500, "internal_error", INTERNAL_ERROR)  # the answer to a bug, whichever path met it


def failure_of(exc: BaseException) -> Failure | None:
    """The failure ``exc`` stands for, or None when it is not one of the server's own errors.

    Overloaded and not-yet-available apps answer with ``Retry-After``.
    """
    if isinstance(exc, ServingError):
        headers = {}
        if isinstance(exc, (Overloaded, AppNotAvailable, RepositoryUnavailable)):
            headers["Retry-After"] = str(getattr(exc, "retry_after", 5))
        return Failure(STATUS_BY_CODE.get(exc.code, 400), exc.code, exc.message, headers)
    if isinstance(exc, ApiError):
        return Failure(exc.status, exc.code, exc.message)
    return None
