"""The base of every foreign-protocol HTTP view: auth as the canonical API, errors in the protocol's shape.

Statuses come from the canonical mapping (``STATUS_BY_CODE``); only the body
differs per protocol (:meth:`ProtocolView.error_body`). Bodies are read as the
protocol says, whatever the Content-Type (TF Serving and Triton clients do not
all send one).
"""
from __future__ import annotations

from typing import Any

from django.http import HttpResponse, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from yyai import bounded_json
from yyai.api.exceptions import STATUS_BY_CODE
from yyai.api.permissions import CanPredict
from yyai.conf import yyai_settings
from yyai.runtime.errors import AppNotAvailable, InputError, Overloaded, ServingError


class ProtocolError(InputError):
    """A request that breaks the protocol's own rules (bad JSON, missing field); 400 by default."""

    def __init__(self, message: str, *, code: str = "bad_input"):
        super().__init__(message)
        self.code = code


class ProtocolView(APIView):
    """An APIView that answers every failure as ``error_body(message, code)`` with the canonical status.

    Who may call it, and how often, are the predict settings
    (``YYAI_PREDICT_PERMISSION``, the ``predict`` throttle scope), with the
    canonical API's authentication (token, basic, session).
    """

    permission_classes = [CanPredict]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "predict"
    parser_classes: list = []  # bodies are read from request.body by the protocol itself

    def error_body(self, message: str, code: str) -> Any:
        return {"error": message}

    def handle_exception(self, exc: Exception) -> HttpResponse:
        headers: dict[str, str] = {}
        if isinstance(exc, ServingError):
            status, code, message = STATUS_BY_CODE.get(exc.code, 400), exc.code, exc.message
            if isinstance(exc, (Overloaded, AppNotAvailable)):
                headers["Retry-After"] = str(getattr(exc, "retry_after", 5))
        elif isinstance(exc, drf.APIException):
            status, code, message = exc.status_code, "error", _detail(exc.detail)
            if isinstance(exc, (drf.NotAuthenticated, drf.AuthenticationFailed)):
                auth = self.get_authenticate_header(self.request)
                if auth:
                    headers["WWW-Authenticate"] = auth
                    status = 401
            if isinstance(exc, drf.Throttled) and exc.wait:
                headers["Retry-After"] = str(int(exc.wait) + 1)
        else:
            return super().handle_exception(exc)
        return JsonResponse(self.error_body(message, code), status=status, headers=headers, safe=False)

    def read_json(self) -> Any:
        """The body as JSON; ProtocolError when it is empty or not JSON."""
        body = self.request.body
        if not body:
            raise ProtocolError("the request body is empty; send a JSON object")
        try:
            return bounded_json.loads(body, max_depth=yyai_settings.MAX_JSON_DEPTH)
        except bounded_json.JSONError as exc:
            raise ProtocolError(str(exc)) from None


def _detail(detail: Any) -> str:
    if isinstance(detail, dict):
        return "; ".join(f"{k}: {v}" for k, v in detail.items())
    if isinstance(detail, list):
        return " ".join(map(str, detail))
    return str(detail)
