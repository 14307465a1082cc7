"""Payload logging: a sampled share of an app's requests and responses, as CloudEvents (KServe's logger).

An app turns it on in ``app.toml`` (``[payload_log]``: ``sample``, ``sink``,
``max_bytes``, ``redact``). A request picked by the sample is handed to one
background thread through a bounded queue and the predict goes on: nothing is
serialised, written or sent on the request's path, so a slow or unreachable
sink never adds latency. When the queue is full the event is dropped and
counted (``yyai_payload_log_events_total{outcome="dropped"}``).

Each request gives two events with one id: ``org.kubeflow.serving.inference.request``
(the request as the data plane saw it: ``images`` base64, ``instances``,
``inputs``) and ``...inference.response`` (the named outputs, or a handler's
answer). The fields ``redact`` names (dotted paths, ``inputs.meta``) become
``"[redacted]"``; a body past ``max_bytes`` of JSON is cut to its head
(``{"truncated": true, "bytes": N, "head": "..."}``). Sinks: ``file``, one JSON
line per event in ``YYAI_DATA_DIR/payloads/<app>.jsonl``; or an http(s) URL,
one POST per event in CloudEvents' binary mode (``ce-*`` headers), 5 s timeout.
"""

from __future__ import annotations

import base64
import json
import logging
import queue
import random
import threading
import urllib.request
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from prometheus_client import Counter

from yyai.fleet.heartbeats import HOST
from yyai.runtime.manifest import AppSpec, PayloadLogSpec

log = logging.getLogger(__name__)

QUEUE_EVENTS = 1000
SINK_TIMEOUT_SECONDS = 5.0
REQUEST, RESPONSE = "org.kubeflow.serving.inference.request", "org.kubeflow.serving.inference.response"
EVENTS = Counter(
    "yyai_payload_log_events", "Payload log events by outcome (written | dropped | failed).", ["app", "outcome"]
)

_queue: queue.Queue = queue.Queue(maxsize=QUEUE_EVENTS)
_writer: threading.Thread | None = None
_writer_lock = threading.Lock()


def offer(spec: AppSpec, version: str, request: Any, response: Any) -> None:
    """Log this request and its response if the app logs payloads and the sample picks it (never blocks)."""
    config = spec.payload_log
    if config is None or random.random() >= config.sample:
        return
    _start_writer()
    try:
        _queue.put_nowait((spec.name, version, config, request, response))
    except queue.Full:
        EVENTS.labels(app=spec.name, outcome="dropped").inc(2)


def drain(timeout: float = 10.0) -> None:
    """Wait until every event offered so far is written (tests, and a process that stops)."""
    done = threading.Event()
    if _writer is None:
        return
    _queue.put((None, None, None, None, done))
    done.wait(timeout)


def _start_writer() -> None:
    global _writer
    if _writer is None:
        with _writer_lock:
            if _writer is None:
                _writer = threading.Thread(target=_write_forever, name="payload-log", daemon=True)
                _writer.start()


def _write_forever() -> None:
    while True:
        app, version, config, request, response = _queue.get()
        if app is None:
            response.set()  # drain()'s marker
            continue
        event_id = str(uuid.uuid4())
        for kind, data in ((REQUEST, _request_json(request)), (RESPONSE, _jsonable(response))):
            try:
                _send(app, version, config, event_id, kind, _capped(_redacted(data, config.redact), config))
                EVENTS.labels(app=app, outcome="written").inc()
            except Exception as exc:  # a sink that is away or refuses: counted and logged, never raised
                EVENTS.labels(app=app, outcome="failed").inc()
                log.warning(
                    "payload log of app %s: the %s event could not be written to %s: %s",
                    app,
                    kind.rsplit(".", 1)[-1],
                    config.sink,
                    exc,
                )


def _send(app: str, version: str, config: PayloadLogSpec, event_id: str, kind: str, data: Any) -> None:
    time = datetime.now(timezone.utc).isoformat()
    source = f"aiserver/{HOST}/{app}"
    if config.sink == "file":
        path = Path(settings.DATA_DIR) / "payloads" / f"{app}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        line = {
            "specversion": "1.0",
            "id": event_id,
            "type": kind,
            "source": source,
            "time": time,
            "app": app,
            "version": version,
            "data": data,
        }
        with path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
        return
    headers = {
        "Content-Type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-type": kind,
        "ce-source": source,
        "ce-time": time,
        "ce-inferenceservicename": app,
        "ce-modelversion": version,
    }
    body = json.dumps(data, ensure_ascii=False).encode()
    with urllib.request.urlopen(
        urllib.request.Request(config.sink, data=body, headers=headers, method="POST"), timeout=SINK_TIMEOUT_SECONDS
    ):
        pass


def _request_json(request: Any) -> dict:
    """The data plane's request as JSON: images base64, tensors as lists."""
    body = {}
    if getattr(request, "images", None):
        body["images"] = [base64.b64encode(image).decode("ascii") for image in request.images]
    for field in ("instances", "inputs"):
        value = getattr(request, field, None)
        if value is not None:
            body[field] = _jsonable(value)
    return body


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, float) and value != value:
        return None
    return value


def _redacted(data: Any, paths: tuple[str, ...]) -> Any:
    for path in paths:
        _redact(data, path.split("."))
    return data


def _redact(node: Any, parts: list[str]) -> None:
    if not parts:
        return
    head, rest = parts[0], parts[1:]
    if isinstance(node, list):  # a path goes through every row of a list
        for item in node:
            _redact(item, parts)
    elif isinstance(node, dict) and head in node:
        if rest:
            _redact(node[head], rest)
        else:
            node[head] = "[redacted]"


def _capped(data: Any, config: PayloadLogSpec) -> Any:
    text = json.dumps(data, ensure_ascii=False)
    size = len(text.encode())
    if size <= config.max_bytes:
        return data
    return {"truncated": True, "bytes": size, "head": text.encode()[: config.max_bytes].decode(errors="ignore")}
