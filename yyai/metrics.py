"""Prometheus metrics of the serving process (the ``/metrics`` view is in :mod:`yyai.http.health`).

Series (every name starts with ``yyai_``):

* ``requests_total{app, version, route, status}`` and
  ``request_duration_seconds{app, route}``: every HTTP request (the
  :class:`yyai.http.request_context.RequestContextMiddleware` observes them); ``app``
  and ``version`` are empty for requests that are not about one app;
* ``model_rows_total{app, model, version}``: rows each model ran on;
* ``batches_total{app}``, ``batch_rows_total{app}``: dynamic batches run and
  the rows in them (mean batch size = rate of rows / rate of batches);
* ``queue_depth{app}``: requests waiting for a batch;
* ``model_load_seconds{app, model}``: load + compile + warm-up time of each model version;
* ``app_available{app}``: 1 when the app serves a version (min over live workers);
* ``reloads_total{app, trigger, status}``: reloads and their failures;
* memory (each worker's own figures, summed over live workers): ``app_memory_bytes{app}``
  and ``model_memory_bytes{app, model}`` (what the loaded version measured at load),
  ``app_resident{app}`` (workers holding it loaded, not on standby),
  ``worker_memory_bytes{kind}`` (``rss``, ``pss``), ``memory_budget_bytes`` (per
  worker; absent when unlimited), ``app_evictions_total{app}`` and
  ``app_loads_on_demand_total{app}`` (unloaded to make room, loaded again by a request).

With several gunicorn workers, ``PROMETHEUS_MULTIPROC_DIR`` is set (by
``aiserver/gunicorn.conf.py``) before this module is imported; each worker
writes its own files and a scrape of any worker aggregates all live ones.
Without it (``runserver``, tests) the process's default registry is served.
"""

from __future__ import annotations

import os
import threading
import weakref
from contextvars import ContextVar
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from yyai.runtime.batching import Batcher
from yyai.runtime.process_memory import process_memory
from yyai.runtime.registry import Registry
from yyai.runtime.servable import ServingVersion

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LOAD_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

REQUESTS = Counter(
    "yyai_requests", "HTTP requests by app, serving version, route and status.", ["app", "version", "route", "status"]
)
LATENCY = Histogram(
    "yyai_request_duration_seconds",
    "HTTP request latency, from the first middleware on.",
    ["app", "route"],
    buckets=LATENCY_BUCKETS,
)
MODEL_ROWS = Counter("yyai_model_rows", "Input rows each model ran on.", ["app", "model", "version"])
BATCHES = Counter("yyai_batches", "Dynamic batches run.", ["app"])
BATCH_ROWS = Counter("yyai_batch_rows", "Rows in the dynamic batches run.", ["app"])
QUEUE_DEPTH = Gauge(
    "yyai_queue_depth", "Requests waiting for a batch (summed over live workers).", ["app"], multiprocess_mode="livesum"
)
LOAD_SECONDS = Histogram(
    "yyai_model_load_seconds",
    "Load, compile and warm-up time of one model version.",
    ["app", "model"],
    buckets=LOAD_BUCKETS,
)
AVAILABLE = Gauge(
    "yyai_app_available",
    "1 when the app serves a version (minimum over live workers).",
    ["app"],
    multiprocess_mode="livemin",
)
RELOADS = Counter("yyai_reloads", "Reloads by trigger and result (ok | failed).", ["app", "trigger", "status"])
APP_MEMORY = Gauge(
    "yyai_app_memory_bytes",
    "Memory of the app's loaded version (summed over workers).",
    ["app"],
    multiprocess_mode="livesum",
)
MODEL_MEMORY = Gauge(
    "yyai_model_memory_bytes",
    "Memory each loaded model measured at load (summed over workers).",
    ["app", "model"],
    multiprocess_mode="livesum",
)
RESIDENT = Gauge(
    "yyai_app_resident", "Workers holding the app loaded (not on standby).", ["app"], multiprocess_mode="livesum"
)
WORKER_MEMORY = Gauge(
    "yyai_worker_memory_bytes",
    "Memory the workers really hold (rss, pss; summed).",
    ["kind"],
    multiprocess_mode="livesum",
)
BUDGET = Gauge("yyai_memory_budget_bytes", "Model memory budget of one worker.", multiprocess_mode="livemax")
EVICTIONS = Counter("yyai_app_evictions", "Apps unloaded to standby to make room in the memory budget.", ["app"])
DEMAND_LOADS = Counter("yyai_app_loads_on_demand", "Standby apps loaded again by a request.", ["app"])

# The (app, version) a request predicted on, for the middleware's request counter.
served: ContextVar[tuple[str, str] | None] = ContextVar("yyai_served", default=None)

_lock = threading.Lock()
_seen_versions: weakref.WeakSet[ServingVersion] = weakref.WeakSet()
_batcher_counts: weakref.WeakKeyDictionary[Batcher, tuple[int, int]] = weakref.WeakKeyDictionary()
_budget_counts: dict[str, tuple[int, int]] = {}
_model_labels: dict[str, set[str]] = {}  # the models each app's memory was last shown for
_children: dict[tuple, Any] = {}  # (metric, label values) -> its series, for the per-request counters


def observe_predict(version: ServingVersion, *, rows: int) -> None:
    """Count one predict call that ran ``rows`` rows on ``version`` (called by ``services.predict``)."""
    app = version.spec.name
    served.set((app, version.id))
    for model in version.models:
        _series(MODEL_ROWS, app, model.name, version.id).inc(rows)
    _observe_version(version)


def observe_registry(registry: Registry) -> None:
    """Bring every app's gauges, batch counters and load times up to date in this process."""
    for util in registry.all():
        version = util.current
        AVAILABLE.labels(util.name).set(1 if version is not None or util.on_standby else 0)
        for served in (version, *(other.current for other in registry.also(util.name).values())):
            if served is not None:  # the target's, and every labelled version's
                _observe_version(served)
    observe_memory(registry)


def observe_memory(registry: Registry) -> None:
    """Bring the memory series of this process up to date (the watcher calls it every pass, scrapes too)."""
    for name, memory in process_memory().items():
        WORKER_MEMORY.labels(name).set(memory)
    if registry.budget.limit is not None:
        BUDGET.set(registry.budget.limit)
    for util in registry.known():
        version = util.current
        RESIDENT.labels(util.name).set(1 if version is not None else 0)
        APP_MEMORY.labels(util.name).set(registry.budget.held(util.name) if version is not None else 0)
        models = {m.name: m.memory_bytes for m in version.models} if version is not None else {}
        for gone in _model_labels.get(util.name, set()) - set(models):
            MODEL_MEMORY.labels(util.name, gone).set(0)
        for model, memory in models.items():
            MODEL_MEMORY.labels(util.name, model).set(memory)
        _model_labels[util.name] = set(models)
    with _lock:
        for app, counts in list(registry.budget.counts.items()):
            evictions, loads = _budget_counts.get(app, (0, 0))
            _budget_counts[app] = (counts.evictions, counts.demand_loads)
            if counts.evictions > evictions:
                EVICTIONS.labels(app).inc(counts.evictions - evictions)
            if counts.demand_loads > loads:
                DEMAND_LOADS.labels(app).inc(counts.demand_loads - loads)


def count_reload(*, app: str, trigger: str, ok: bool) -> None:
    """Count one reload attempt (called where reload events are recorded)."""
    RELOADS.labels(app, trigger, "ok" if ok else "failed").inc()


def observe_request(*, app: str, version: str, route: str, status: int, seconds: float) -> None:
    """Count one HTTP request and its latency."""
    _series(REQUESTS, app, version, route, str(status)).inc()
    _series(LATENCY, app, route).observe(seconds)


def _observe_version(version: ServingVersion) -> None:
    """Load times on first sight of a version; batch counters as deltas since the last look."""
    app = version.spec.name
    batcher = version.batcher
    with _lock:
        first_sight = version not in _seen_versions
        _seen_versions.add(version)
        last_batches, last_rows = _batcher_counts.get(batcher, (0, 0))
        batches, rows = batcher.batches, batcher.rows
        _batcher_counts[batcher] = (batches, rows)
    if first_sight:
        AVAILABLE.labels(app).set(1)
        for model in version.models:
            LOAD_SECONDS.labels(app, model.name).observe(model.load_seconds + model.warmup_seconds)
    if batches > last_batches:
        _series(BATCHES, app).inc(batches - last_batches)
    if rows > last_rows:
        _series(BATCH_ROWS, app).inc(rows - last_rows)
    _series(QUEUE_DEPTH, app).set(batcher.depth)


def _series(metric, *labels: str):
    """``metric.labels(*labels)``, looked up once: prometheus_client validates the values and takes a lock on
    every ``labels()`` call, six times per predict (the set of label values is the metric's own cardinality)."""
    key = (metric, labels)
    series = _children.get(key)
    if series is None:
        series = _children[key] = metric.labels(*labels)
    return series


def exposition() -> bytes:
    """The text exposition of every series: all live workers' in multiprocess mode, else this process's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
