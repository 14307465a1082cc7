"""What OpenTelemetry tracing costs a predict on the fast path, off (the default) and on; in-process, < 1 min.

``.venv/bin/python -m bench.tracing_cost [--requests 1500] [--rounds 5]``

One worker's real stack without a socket: Django set up on a fresh SQLite
database, a one-model app (an 8x8 gray regressor) loaded by start-up, and
:class:`yyai.http.fastpath.FastPredict` called directly with an ASGI scope, one
request after the other on one event loop (decode in the CPU pool, the batcher's
thread, the JSON answer: everything but the socket and HTTP parsing). Each
round runs every mode in turn (a different one first each round), so the machine's drift hits them
alike; the table
gives each mode's median over the rounds, and the difference from off.

Modes: ``off`` (as shipped: no OpenTelemetry import, checked first); ``on,
unsampled`` (YYAI_TRACES on, the caller's traceparent says not sampled: spans
are not recorded); ``on, sampled`` (every span made and handed to a
BatchSpanProcessor whose exporter drops them: the cost in the worker, without
the network). Between rounds, off is the same process with the switch turned
back off. The cost of the off checks alone (module flags tested) is timed too.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path

HEADER_SAMPLED = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
HEADER_UNSAMPLED = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"


def _environment(work: Path) -> None:
    for name in [n for n in os.environ if n.startswith(("YYAI_", "OTEL_"))]:
        del os.environ[name]
    os.environ.update(
        DJANGO_SETTINGS_MODULE="aiserver.settings",
        DJANGO_HTTPS="0",
        TF_CPP_MIN_LOG_LEVEL="2",
        YYAI_DATA_DIR=str(work / "data"),
        YYAI_MODEL_STORE=str(work / "store"),
        YYAI_SYNC_SECONDS="0",
        YYAI_BATCH_TIMEOUT_MICROS="0",  # one request at a time: never wait for a batch to fill
    )


def _build_app(store: Path) -> bytes:
    """The ``calc`` app (weight-1 regressor on 8x8 gray) and a PNG for it."""
    import cv2
    import keras
    import numpy as np

    inputs = keras.Input(shape=(8, 8, 1), name="pixels")
    out = keras.layers.Dense(1, kernel_initializer="ones", name="y")(keras.layers.Flatten()(inputs))
    (store / "calc").mkdir(parents=True)
    keras.Model(inputs, out).save(store / "calc" / "a.keras")
    (store / "calc" / "app.toml").write_text('[input]\ncolor = "gray"\n')
    return cv2.imencode(".png", np.full((8, 8), 255, np.uint8))[1].tobytes()


def _scope(body: bytes, traceparent: bytes | None) -> dict:
    headers = [(b"host", b"localhost"), (b"content-type", b"application/json")]
    headers.append((b"content-length", str(len(body)).encode()))
    if traceparent:
        headers.append((b"traceparent", traceparent))
    path = "/api/apps/calc/predict/"
    return {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "scheme": "http",
        "http_version": "1.1",
        "root_path": "",
        "client": ("127.0.0.1", 50000),
        "server": ("localhost", 80),
        "headers": headers,
    }


async def _run(app, body: bytes, traceparent: bytes | None, requests: int) -> float:
    """Microseconds per request, ``requests`` sent one after the other."""
    scope = _scope(body, traceparent)
    statuses = []

    async def send(message):
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    started = time.perf_counter()
    for _ in range(requests):
        sent = False

        async def receive():
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await app(scope, receive, send)
    elapsed = time.perf_counter() - started
    assert statuses == [200] * requests, statuses[:3]
    return elapsed / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1500, help="requests per mode and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--off-only", action="store_true", help="only the off mode (also runs on a tree from before yyai/tracing.py)"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tracing-cost-"))
    _environment(work)
    image = _build_app(work / "store")
    body = json.dumps({"image": base64.b64encode(image).decode()}).encode()

    from aiserver import bootstrap

    bootstrap.prepare()
    import django

    django.setup()
    from a2wsgi import WSGIMiddleware
    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application

    call_command("migrate", verbosity=0)
    from yyai.http.fastpath import FastPredict
    from yyai.lifecycle import startup
    from yyai.runtime import batching

    startup.start(watch=False)
    django_asgi = WSGIMiddleware(get_wsgi_application(), workers=2)
    fast_off = FastPredict(django_asgi)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(_run(fast_off, body, None, 200))  # warm-up
    first_off = loop.run_until_complete(_run(fast_off, body, HEADER_SAMPLED, args.requests))
    imported = sorted(name for name in sys.modules if name.startswith("opentelemetry"))
    print(f"off: batching.observer={getattr(batching, 'observer', None)}, opentelemetry modules: {imported}")
    if args.off_only:
        runs = [
            first_off,
            *(loop.run_until_complete(_run(fast_off, body, None, args.requests)) for _ in range(args.rounds)),
        ]
        print(f"off only: {statistics.median(runs):.0f} µs per request (median of {len(runs)} runs of {args.requests})")
        return
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    from yyai import tracing

    class Drop(SpanExporter):
        exported = 0

        def export(self, spans):
            Drop.exported += len(spans)
            return SpanExportResult.SUCCESS

    tracing.start(Drop())
    watch = batching.observer
    fast_on = FastPredict(django_asgi)  # built with traces on: it keeps the traceparent header

    def switch(on: bool) -> None:
        tracing.ON, batching.observer = on, (watch if on else None)

    modes = {
        "off": (False, fast_off, HEADER_SAMPLED),
        "on, unsampled": (True, fast_on, HEADER_UNSAMPLED),
        "on, sampled": (True, fast_on, HEADER_SAMPLED),
    }
    for on, app, header in modes.values():  # warm-up of each
        switch(on)
        loop.run_until_complete(_run(app, body, header, 200))
    times: dict[str, list[float]] = {name: [] for name in modes}
    times["off"].append(first_off)
    names = list(modes)
    for round_ in range(args.rounds):
        for name in names[round_ % 3 :] + names[: round_ % 3]:  # each mode goes first in turn
            on, app, header = modes[name]
            switch(on)
            times[name].append(loop.run_until_complete(_run(app, body, header, args.requests)))
    switch(False)
    tracing.stop()

    flags = timeit.timeit("tracing.ON", globals={"tracing": tracing}, number=1_000_000) * 1e3  # ns per test
    base = statistics.median(times["off"])
    print(f"\n{args.requests} sequential fast-path predicts per mode and round, {args.rounds} rounds; median:")
    print("| mode | µs per request | vs off |\n|---|---:|---:|")
    for name, values in times.items():
        median = statistics.median(values)
        spread = f"{min(values):.0f}-{max(values):.0f}"
        print(f"| {name} | {median:.0f} ({spread}) | {median - base:+.1f} µs ({(median / base - 1) * 100:+.1f}%) |")
    print(f"\nspans exported (dropped by the exporter): {Drop.exported}")
    print(f"one `tracing.ON` test: {flags:.0f} ns; a request off makes 4 of them and the batcher 2 `observer` tests")


if __name__ == "__main__":
    main()
