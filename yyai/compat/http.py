"""The base of every foreign-protocol HTTP view: auth as the canonical API, errors in the protocol's shape.

Statuses come from the one mapping (:func:`yyai.api.exceptions.known_failure`); only the body
differs per protocol (:meth:`ProtocolView.error_body`). Bodies are read as the
protocol says, whatever the Content-Type (TF Serving and Triton clients do not
all send one).
"""

from __future__ import annotations

from typing import Any

from django.http import JsonResponse
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from yyai import bounded_json
from yyai.api.exceptions import known_failure
from yyai.api.permissions import CanPredict
from yyai.conf import yyai_settings
from yyai.runtime.errors import InputError


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

    def get_exception_handler(self):
        """DRF's handler hook (after its 401/403 choice for failed authentication): this protocol's body."""
        return self._protocol_error

    def _protocol_error(self, exc: Exception, context: dict) -> JsonResponse | None:
        failure = known_failure(exc)
        if failure is None:
            return None  # a bug: DRF re-raises it and Django answers 500, without a trace
        return JsonResponse(
            self.error_body(failure.message, failure.code), status=failure.status, headers=failure.headers, safe=False
        )

    def read_json(self) -> Any:
        """The body as JSON; ProtocolError when it is empty or not JSON."""
        body = self.request.body
        if not body:
            raise ProtocolError("the request body is empty; send a JSON object")
        try:
            return bounded_json.loads(body, max_depth=yyai_settings.MAX_JSON_DEPTH)
        except bounded_json.JSONError as exc:
            raise ProtocolError(str(exc)) from None
