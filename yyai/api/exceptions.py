"""The error format in Django and DRF: the exception handler, the error views, and the framework's own failures.

What a failure means (status, code, message, headers) is decided once, in
:mod:`yyai.http_errors`; this module adds Django's and DRF's exceptions to it
and renders the result. Nothing here ever puts a stack trace in a response.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.db import DatabaseError
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

from yyai.http_errors import INTERNAL, Failure, error_body, failure_of

DATABASE_UNAVAILABLE = Failure(
    503,
    "database_unavailable",
    "the database cannot be reached or stayed locked; predictions go on, retry this in a few seconds",
    {"Retry-After": "5"},
)

DRF_CODES = {
    drf.ParseError: "malformed_body",
    drf.UnsupportedMediaType: "unsupported_media_type",
    drf.NotAuthenticated: "not_authenticated",
    drf.AuthenticationFailed: "authentication_failed",
    drf.PermissionDenied: "permission_denied",
    drf.NotFound: "not_found",
    drf.MethodNotAllowed: "method_not_allowed",
    drf.NotAcceptable: "not_acceptable",
    drf.Throttled: "throttled",
    drf.ValidationError: "invalid",
}


def json_error(message: str, code: str, status: int, headers: dict | None = None) -> JsonResponse:
    """The error format as a plain Django response (for middleware and non-DRF views)."""
    response = JsonResponse(error_body(message, code), status=status)
    for key, value in (headers or {}).items():
        response[key] = value
    return response


RENDERED_ERRORS = ("application/json", "text/html")  # JSON, or the browsable API's page around the JSON


def exception_handler(exc, context) -> Response | JsonResponse | None:
    """DRF's EXCEPTION_HANDLER: every known failure becomes the JSON error format.

    A view whose negotiated renderer writes something else (the OpenAPI schema's YAML) answers plain JSON.
    """
    failure = known_failure(exc)
    if failure is None:
        return None  # a real bug: Django's 500 handler answers, without a trace
    body = failure.body()
    if isinstance(exc, drf.ValidationError) and isinstance(exc.detail, dict):
        body["fields"] = exc.detail
    renderer = getattr(context.get("request"), "accepted_renderer", None)
    if renderer is not None and renderer.media_type not in RENDERED_ERRORS:
        return JsonResponse(body, status=failure.status, headers=failure.headers)
    return Response(body, status=failure.status, headers=failure.headers)


def known_failure(exc: BaseException) -> Failure | None:
    """The failure ``exc`` stands for: the server's own errors, then Django's and DRF's; None for anything else."""
    failure = failure_of(exc)
    if failure is not None:
        return failure
    if isinstance(exc, RequestDataTooBig):
        return Failure(413, "payload_too_large", "the request body is larger than the server accepts")
    if isinstance(exc, drf.APIException):
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if isinstance(exc, drf.Throttled) and exc.wait:
            headers["Retry-After"] = str(int(exc.wait) + 1)
        return Failure(exc.status_code, _drf_code(exc), _drf_message(exc), headers)
    if isinstance(exc, Http404):
        return Failure(404, "not_found", "not found")
    if isinstance(exc, PermissionDenied):
        return Failure(403, "permission_denied", "you do not have permission to do this")
    if isinstance(exc, SuspiciousOperation):
        return Failure(400, "bad_request", "the request was refused as malformed")
    if isinstance(exc, DatabaseError):  # PostgreSQL away, SQLite locked past its timeout
        return DATABASE_UNAVAILABLE
    return None


def _drf_code(exc: drf.APIException) -> str:
    if isinstance(exc, drf.PermissionDenied) and str(exc.detail).startswith("CSRF Failed"):
        return "csrf_failed"  # SessionAuthentication's check, the same failure as CSRF_FAILURE_VIEW's
    for kind, code in DRF_CODES.items():
        if isinstance(exc, kind):
            return code
    return "error"


def _drf_message(exc: drf.APIException) -> str:
    detail = exc.detail
    if isinstance(detail, dict):
        return "; ".join(
            f"{key}: {' '.join(map(str, value)) if isinstance(value, list) else value}" for key, value in detail.items()
        )
    if isinstance(detail, list):
        return " ".join(map(str, detail))
    return str(detail)


def bad_request_view(request, exception=None):
    """handler400 (a bad Host, a suspicious request): JSON like every other error."""
    return json_error("the request was refused as malformed", "bad_request", 400)


def permission_denied_view(request, exception=None):
    """handler403: JSON like every other error."""
    return json_error("you do not have permission to do this", "permission_denied", 403)


def csrf_failure_view(request, reason=""):
    """CSRF_FAILURE_VIEW: a write made with a session cookie but without its CSRF token."""
    return json_error(
        "CSRF check failed: a request made with a session cookie needs the X-CSRFToken header "
        "(or use token or basic authentication)",
        "csrf_failed",
        403,
    )


def not_found_view(request, exception=None):
    """handler404: JSON like every other error."""
    return json_error(f"no endpoint at {request.path}", "not_found", 404)


def server_error_view(request):
    """handler500: JSON, no trace; the trace is in the server log."""
    return json_error(INTERNAL.message, INTERNAL.code, INTERNAL.status)


def json_methods(*methods: str):
    """A view decorator like Django's ``require_http_methods``, answering 405 in the error format."""
    allowed = ", ".join(methods)

    def decorate(view):
        def wrapped(request, *args, **kwargs):
            if request.method not in methods:
                return json_error(
                    f"{request.path} only answers {allowed}", "method_not_allowed", 405, {"Allow": allowed}
                )
            return view(request, *args, **kwargs)

        wrapped.__name__, wrapped.__doc__ = view.__name__, view.__doc__
        return wrapped

    return decorate
