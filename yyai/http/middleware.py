"""The server's own middleware: bodies above YYAI_MAX_BODY_BYTES refused before anything reads them, and a
database that cannot be reached answered as 503 by every Django view."""

import logging

from django.db import DatabaseError

from yyai.api.exceptions import DATABASE_UNAVAILABLE, json_error
from yyai.conf import yyai_settings

log = logging.getLogger(__name__)

UPLOAD_SUFFIX = "/versions/"  # version uploads: YYAI_MAX_UPLOAD_BYTES


class BodySizeLimitMiddleware:
    """413 with the JSON error format when Content-Length exceeds the limit.

    Django enforces DATA_UPLOAD_MAX_MEMORY_SIZE only when ``request.body`` is
    read; DRF parsers read the stream, so the limit is checked here, up front.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return json_error("Content-Length is not a number", "bad_request", 400)
        limit = yyai_settings.MAX_UPLOAD_BYTES if request.path.endswith(UPLOAD_SUFFIX) else yyai_settings.MAX_BODY_BYTES
        if length > limit:
            return json_error(f"the request body is {length} bytes; the limit is {limit}", "payload_too_large", 413)
        return self.get_response(request)


class DatabaseUnavailableMiddleware:
    """A view (the admin, the web page; DRF's own views map it in their exception handler) that meets a
    DatabaseError answers 503 ``database_unavailable`` with Retry-After, logged as one warning line."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, DatabaseError):
            return None
        log.warning("%s %s: the database is unavailable: %s", request.method, request.path, exception)
        failure = DATABASE_UNAVAILABLE
        return json_error(failure.message, failure.code, failure.status, failure.headers)
