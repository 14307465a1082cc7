"""Probes: /healthz (the process answers) and /readyz (every app readiness waits for serves a version); /metrics.

Under gunicorn the ASGI front (yyai/http/front.py) answers both on the event loop,
without Django or authentication; these views answer them under ``runserver``
and Django's test client. Both call :func:`liveness` and :func:`readiness`.
"""

from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST

from yyai import metrics
from yyai.api.exceptions import json_methods
from yyai.fleet.process_registry import get_registry
from yyai.runtime.servable import State
from yyai.services import dataplane


def liveness() -> tuple[int, dict]:
    return 200, {"status": "ok"}


def readiness() -> tuple[int, dict]:
    """503 until every app readiness waits for (one that served, or that the operator declared) serves."""
    states = dataplane.readiness()
    waiting = sorted(name for name, state in states.items() if not State(state).serves)
    body = {"ready": not waiting, "apps": states}
    if waiting:
        body["waiting_for"] = waiting
    return (503 if waiting else 200), body


@json_methods("GET", "HEAD")
def healthz(request):
    status, body = liveness()
    return JsonResponse(body, status=status)


@json_methods("GET", "HEAD")
def readyz(request):
    status, body = readiness()
    return JsonResponse(body, status=status)


@json_methods("GET", "HEAD")
def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /metrics``: the Prometheus text format, after refreshing this process's gauges."""
    metrics.observe_registry(get_registry())
    return HttpResponse(metrics.exposition(), content_type=CONTENT_TYPE_LATEST)
