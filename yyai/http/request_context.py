"""Per-request context: the request id, the request's metrics and its JSON access log line.

:class:`RequestContextMiddleware` goes first in ``MIDDLEWARE`` so that every
response, including early refusals, is covered:

* ``X-Request-ID``: a caller's id (1-128 characters of ``A-Z a-z 0-9 . _ : - + / =``)
  is kept, anything else is replaced by 32 fresh random hex digits; the id is echoed on
  the response, stored as ``request.request_id`` and put on every log record
  written while the request runs (:mod:`yyai.logging_json`);
* metrics: ``yyai_requests_total`` and ``yyai_request_duration_seconds``
  (:mod:`yyai.metrics`);
* ``Server-Timing: load;dur=<ms>`` when the request waited for its standby app to load (memory budget);
* with ``YYAI_LOG_JSON=1``, one line per request on the ``yyai.access`` logger;
* with ``YYAI_TRACES`` on, the request's server span (:mod:`yyai.tracing`), continuing a ``traceparent``.
"""

from __future__ import annotations

import logging
import random
import re
import time
from typing import Callable

from django.http import HttpRequest, HttpResponse

from yyai import metrics, tracing
from yyai.conf import yyai_settings
from yyai.fleet.process_registry import get_registry
from yyai.logging_json import request_id
from yyai.runtime.budget import waited_ms
from yyai.runtime.errors import AppNotFound
from yyai.services.addressing import request_headers

HEADER = "X-Request-ID"
VALID_ID = re.compile(r"[A-Za-z0-9._:+/=-]{1,128}")
APP_KWARGS = ("app", "name")  # URL keyword arguments that name a model app (canonical, seed, compat routes)

access_log = logging.getLogger("yyai.access")


class RequestContextMiddleware:
    """Tags, measures and logs every request; see the module docstring."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        tracing.configure()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not tracing.ON:
            return self._handle(request)
        with tracing.http_server(request.method, request.path, request.headers):
            return self._handle(request)

    def _handle(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        rid = request_id_of(request.headers.get(HEADER, ""))
        request.request_id = rid
        rid_token = request_id.set(rid)
        served_token = metrics.served.set(None)
        waited_token = waited_ms.set(None)
        headers_token = request_headers.set(request.headers)  # a canary's sticky header
        try:
            response = self.get_response(request)
            app, version = metrics.served.get() or (_app_of(request), "")
            route = request.resolver_match.view_name if request.resolver_match else "unmatched"
            finish_request(
                method=request.method,
                path=request.path,
                status=response.status_code,
                seconds=time.perf_counter() - started,
                app=app,
                version=version,
                route=route,
                remote_addr=request.META.get("REMOTE_ADDR", ""),
            )
            response[HEADER] = rid
            if waited_ms.get() is not None:  # its app was on standby: the load it waited for
                response["Server-Timing"] = f"load;dur={waited_ms.get()}"
            return response
        finally:
            waited_ms.reset(waited_token)
            request_headers.reset(headers_token)
            metrics.served.reset(served_token)
            request_id.reset(rid_token)


def request_id_of(incoming: str) -> str:
    """The caller's X-Request-ID when it is a valid one, else 32 fresh random hex digits.

    The digits come from ``random`` (reseeded in every forked worker), not ``uuid4``: an id correlates log
    lines, it guards nothing, and ``uuid4``'s system call cost 3-5% of the event loop's samples under load."""
    return incoming if VALID_ID.fullmatch(incoming) else f"{random.getrandbits(128):032x}"


def finish_request(
    *, method: str, path: str, status: int, seconds: float, app: str, version: str, route: str, remote_addr: str
) -> None:
    """Count one answered request in the metrics and, with YYAI_LOG_JSON=1, write its access log line."""
    metrics.observe_request(app=app, version=version, route=route, status=status, seconds=seconds)
    if tracing.ON:
        tracing.finish(method=method, status=status, app=app, version=version, route=route)
    if yyai_settings.LOG_JSON:
        access_log.info(
            "%s %s %d",
            method,
            path,
            status,
            extra={
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
                "app": app,
                "version": version,
                "route": route,
                "remote_addr": remote_addr,
            },
        )


def _app_of(request: HttpRequest) -> str:
    """The model app the URL names, if the registry knows it ("" otherwise: no label per unknown name)."""
    kwargs = request.resolver_match.kwargs if request.resolver_match else {}
    name = next((kwargs[key] for key in APP_KWARGS if isinstance(kwargs.get(key), str)), "")
    if not name:
        return ""
    try:
        get_registry().get(name)
    except AppNotFound:
        return ""
    return name
