"""``python manage.py grpcserve [--port 8500]``: TF Serving's gRPC API for the model store.

Loads every app with :func:`yyai.serving.start` (which also starts the
generation watcher, so reloads made over HTTP by any process reach this one),
then serves PredictionService and ModelService until SIGINT/SIGTERM.
"""
from __future__ import annotations

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve TF Serving's gRPC API (PredictionService, ModelService) for every model app."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8500, help="port to listen on (default 8500, as TF Serving)")
        parser.add_argument("--host", default="[::]", help="address to bind (default all: [::])")
        parser.add_argument("--workers", type=int, default=8, help="request threads (default 8)")
        parser.add_argument("--grace", type=float, default=5.0, help="seconds to finish requests on shutdown")

    def handle(self, *args, port: int, host: str, workers: int, grace: float, **options):
        from yyai import serving
        from yyai.compat.grpc_service import build_server

        serving.start()
        server, bound = build_server(f"{host}:{port}", workers=workers,
                                     max_message_bytes=settings.YYAI_MAX_BODY_BYTES)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        server.start()
        self.stdout.write(self.style.SUCCESS(f"gRPC (TF Serving API) listening on {host}:{bound}"))
        stop.wait()
        self.stdout.write("shutting down")
        server.stop(grace).wait()
