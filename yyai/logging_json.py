"""JSON log lines (``YYAI_LOG_JSON=1``): one JSON object per record, tagged with the request id; and the filter
that logs the server's designed 503s as warnings.

Light on purpose: ``LOGGING`` and the gunicorn configuration load this module
before Django apps (and TensorFlow) are imported.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import datetime, timezone

# The id of the request this thread is serving ("" outside a request); set by the request middleware.
request_id: ContextVar[str] = ContextVar("yyai_request_id", default="")
# The (app, version) the request runs on, once it holds one (yyai.services.addressing.serving).
served_version: ContextVar[tuple[str, str] | None] = ContextVar("yyai_served_version", default=None)

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON.

    Keys: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, ``pid``,
    ``request_id`` (inside a request), ``app`` and ``version`` (once the request
    runs on a version), every ``extra=`` field of the call, and
    ``exception`` (the formatted traceback) when there is one.
    """

    def format(self, record: logging.LogRecord) -> str:
        body = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        current = request_id.get()
        if current:
            body["request_id"] = current
        served = served_version.get()
        if served is not None:
            body["app"], body["version"] = served
        body.update(
            (key, value) for key, value in vars(record).items() if key not in _STANDARD and not key.startswith("_")
        )
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            body["stack"] = self.formatStack(record.stack_info)
        return json.dumps(body, default=str, ensure_ascii=False)


class UnavailableIsAWarning(logging.Filter):
    """On ``django.request``: a 503 is one the server gives by design (overloaded, an app not loaded yet, an
    unreachable model repository or database), with ``Retry-After``: a WARNING without a traceback, not an
    ERROR (Django logs every 5xx as one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) == 503:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
        return True
