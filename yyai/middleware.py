"""Refuse request bodies above YYAI_MAX_BODY_BYTES before anything reads them."""

from yyai.api.exceptions import json_error
from yyai.conf import yyai_settings

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
