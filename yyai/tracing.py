"""OpenTelemetry traces, off by default: W3C ``traceparent`` in, spans out over OTLP/HTTP (protobuf).

``YYAI_TRACES=otlp`` turns them on (``console``: printed on stdout instead); the
OpenTelemetry SDK then reads its own variables (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
or ``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_SERVICE_NAME``, ``OTEL_TRACES_SAMPLER``,
``OTEL_BSP_*``, ``OTEL_PROPAGATORS``...); ``OTEL_SDK_DISABLED=true`` keeps them off.

The contract for callers: test :data:`ON` (a plain bool, read as ``tracing.ON``)
and call anything else here only when it is true. Off, nothing of OpenTelemetry
is imported and the request path makes no span object. :func:`configure` reads
the switch, once per process.

Spans (docs/operations.md): a SERVER span per request (:func:`server`, for HTTP
named and tagged by :func:`finish`), with children ``decode`` (:func:`traced`, :func:`call`),
``queue`` and ``model`` (from the batcher, :class:`_BatchWatch`) and ``encode``;
and one ``batch`` span per batch run, a root linked to the span of every request
it served, which each ``model`` span links back to.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Awaitable, Callable, Mapping, TypeVar

from yyai.conf import yyai_settings
from yyai.logging_json import request_id
from yyai.runtime import batching

ON = False  # the one thing the request path reads when traces are off
HEADERS = frozenset({b"traceparent", b"tracestate"})  # the request headers a trace continues from
TRACER = "yyai"

T = TypeVar("T")
log = logging.getLogger(__name__)
_lock = threading.Lock()
_configured = False
_global_set = False
_api: Any = None  # opentelemetry.trace, once on
_context: Any = None  # opentelemetry.context
_propagate: Any = None  # opentelemetry.propagate
_tracer: Any = None
_provider: Any = None


def configure() -> bool:
    """Turn traces on if ``YYAI_TRACES`` says so; read once per process (later calls answer the same)."""
    global _configured
    with _lock:
        if not _configured:
            _configured = True
            mode = yyai_settings.TRACES
            if mode != "off" and os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
                log.info("YYAI_TRACES=%s, but OTEL_SDK_DISABLED=true: no traces", mode)
            elif mode != "off":
                start(_exporter(mode))
                log.info("traces on: %s", mode)
    return ON


def start(exporter: Any) -> None:
    """Trace this process through ``exporter`` (an SDK SpanExporter) behind a BatchSpanProcessor (OTEL_BSP_*)."""
    global ON, _api, _context, _propagate, _tracer, _provider, _global_set
    from opentelemetry import context, propagate, trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "aiserver"}))
    provider = TracerProvider(resource=resource)  # the sampler from OTEL_TRACES_SAMPLER (_ARG)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    if not _global_set:  # a handler's own spans (opentelemetry.trace.get_tracer) join the request's trace
        trace.set_tracer_provider(provider)
        _global_set = True
    _api, _context, _propagate, _provider = trace, context, propagate, provider
    _tracer = provider.get_tracer(TRACER)
    batching.observer = _BatchWatch()
    ON = True


def stop() -> None:
    """Export what is pending, then turn traces off (tests; at exit the SDK flushes by itself)."""
    global ON
    ON = False
    batching.observer = None
    if _provider is not None:
        _provider.shutdown()


def flush(timeout_ms: int = 5000) -> bool:
    """Export every ended span now."""
    return _provider.force_flush(timeout_ms) if _provider is not None else True


def _exporter(mode: str) -> Any:
    if mode == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # endpoint, headers, timeout, compression: OTEL_EXPORTER_OTLP_(TRACES_)*


def server(name: str, carrier: Mapping[str, str], attributes: dict[str, Any]):
    """A context manager: the request's SERVER span ``name``, current inside, continuing the trace of the
    ``traceparent`` in ``carrier`` (lower-case header names, or a case-blind mapping); an exception escaping it
    is recorded on it. ``with ... as span`` gives the span."""
    return _tracer.start_as_current_span(
        name, context=_propagate.extract(carrier), kind=_api.SpanKind.SERVER, attributes=attributes
    )


def http_server(method: str, path: str, carrier: Mapping[str, str]):
    """:func:`server` for an HTTP request; :func:`finish` names it and adds the answer's attributes."""
    return server(method, carrier, {"http.request.method": method, "url.path": path})


def finish(*, method: str, status: int, app: str, version: str, route: str) -> None:
    """Name and tag the current request span once it is answered (a status >= 500 is an error)."""
    span = _api.get_current_span()
    if not span.is_recording():
        return
    span.update_name(f"{method} {route}")
    span.set_attributes(
        {
            "http.response.status_code": status,
            "yyai.route": route,
            "yyai.app": app,
            "yyai.version": version,
            "yyai.request_id": request_id.get(),
        }
    )
    if status >= 500:
        span.set_status(_api.Status(_api.StatusCode.ERROR))


def tags(version: Any) -> dict[str, str]:
    """The attributes naming a serving version (``yyai.runtime.servable.ServingVersion``)."""
    return {"yyai.app": version.spec.name, "yyai.version": str(version.id)}


async def traced(name: str, attributes: dict[str, Any], awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` in a child span ``name`` of the current span (none when that one is not recorded)."""
    if not _api.get_current_span().is_recording():
        return await awaitable
    with _tracer.start_as_current_span(name, attributes=attributes):
        return await awaitable


def call(name: str, attributes: dict[str, Any], function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` in a child span ``name`` of the current span (none when that one is not recorded)."""
    if not _api.get_current_span().is_recording():
        return function(*args)
    with _tracer.start_as_current_span(name, attributes=attributes):
        return function(*args)


class _Mark:
    """A queued job of a traced request: the context its spans are children of, and when it was queued."""

    __slots__ = ("context", "span_context", "queued_ns", "done")

    def __init__(self, context: Any, span_context: Any):
        self.context, self.span_context = context, span_context
        self.queued_ns = time.time_ns()
        self.done = False


class _BatchWatch:
    """The batcher's observer (``yyai.runtime.batching.Observer``): per traced job a ``queue`` span (queued until
    its batch started) and a ``model`` span (the batch's run), children of the request's span; per batch with a
    traced job a root ``batch`` span linked to those requests' spans."""

    def enqueued(self) -> _Mark | None:
        span_context = _api.get_current_span().get_span_context()
        return _Mark(_context.get_current(), span_context) if span_context.trace_flags.sampled else None

    def ran(self, name: str, batch: list, started_ns: int) -> None:
        try:
            self._spans(name, batch, started_ns, time.time_ns())
        except Exception:  # noqa: BLE001 - tracing never fails a batch
            log.exception("could not record the spans of a batch")

    def _spans(self, name: str, batch: list, started_ns: int, ended_ns: int) -> None:
        marks = [pending.mark for pending in batch if pending.mark is not None]
        if not marks:
            return
        app, _, version = name.partition("@")
        tagged = {"yyai.app": app, "yyai.version": version}
        size = {**tagged, "yyai.batch.requests": len(batch), "yyai.batch.rows": sum(p.job.rows for p in batch)}
        error = next((pending.error for pending in batch if pending.error is not None), None)
        root = _tracer.start_span(
            "batch",
            context=_context.Context(),
            links=[_api.Link(mark.span_context) for mark in marks],
            start_time=started_ns,
            attributes=size,
        )
        _failed(root, error)
        root.end(end_time=ended_ns)
        back = [_api.Link(root.get_span_context())]
        for pending in batch:
            mark = pending.mark
            if mark is None or mark.done:  # done: run again alone after its batch's input error, and recorded
                continue
            mark.done = True
            queue = _tracer.start_span("queue", context=mark.context, start_time=mark.queued_ns, attributes=tagged)
            queue.end(end_time=started_ns)
            model = _tracer.start_span(
                "model",
                context=mark.context,
                links=back,
                start_time=started_ns,
                attributes={**size, "yyai.rows": pending.job.rows},
            )
            _failed(model, pending.error)
            model.end(end_time=ended_ns)


def _failed(span: Any, error: BaseException | None) -> None:
    if error is not None:
        span.set_status(_api.Status(_api.StatusCode.ERROR, f"{type(error).__name__}: {error}"))
