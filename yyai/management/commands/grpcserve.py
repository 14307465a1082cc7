"""``python manage.py grpcserve [--port 8500]``: TF Serving's gRPC API for the model store.

Loads every app with :func:`yyai.lifecycle.startup.start` (which also starts the
watcher, so reloads made over HTTP by any process reach this one), then serves
PredictionService and ModelService until SIGINT/SIGTERM.

Safe by default: it binds the loopback address (``--host 0.0.0.0`` or ``[::]``
to open it), calls need the REST API's tokens when ``YYAI_PREDICT_PERMISSION``
asks for a login, and ``--tls-cert`` / ``--tls-key`` (or ``YYAI_GRPC_TLS_CERT``
/ ``YYAI_GRPC_TLS_KEY``) serve TLS. Messages are capped at ``YYAI_MAX_BODY_BYTES``.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from yyai.conf import yyai_settings


class Command(BaseCommand):
    help = "Serve TF Serving's gRPC API (PredictionService, ModelService) for every model app."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8500, help="port to listen on (default 8500, as TF Serving)")
        parser.add_argument(
            "--host",
            default="127.0.0.1",
            help="address to bind (default 127.0.0.1; 0.0.0.0 or [::] for every interface)",
        )
        parser.add_argument("--workers", type=int, default=8, help="request threads (default 8)")
        parser.add_argument("--grace", type=float, default=5.0, help="seconds to finish requests on shutdown")
        parser.add_argument(
            "--tls-cert",
            type=Path,
            default=os.environ.get("YYAI_GRPC_TLS_CERT") or None,
            help="PEM certificate chain: serve TLS (with --tls-key)",
        )
        parser.add_argument(
            "--tls-key",
            type=Path,
            default=os.environ.get("YYAI_GRPC_TLS_KEY") or None,
            help="PEM private key of --tls-cert",
        )

    def handle(
        self,
        *args,
        port: int,
        host: str,
        workers: int,
        grace: float,
        tls_cert: Path | None,
        tls_key: Path | None,
        **options,
    ):
        from yyai.compat.grpc_service import build_server
        from yyai.lifecycle import startup

        if bool(tls_cert) != bool(tls_key):
            raise CommandError("--tls-cert and --tls-key go together")
        try:
            tls = (Path(tls_cert).read_bytes(), Path(tls_key).read_bytes()) if tls_cert else None
        except OSError as exc:
            raise CommandError(f"cannot read the TLS files: {exc.strerror}: {exc.filename}") from None
        startup.start()
        server, bound = build_server(
            f"{host}:{port}",
            workers=workers,
            max_message_bytes=yyai_settings.MAX_BODY_BYTES,
            permission=yyai_settings.PREDICT_PERMISSION,
            tls=tls,
        )
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        server.start()
        mode = "TLS" if tls else "plain text"
        self.stdout.write(self.style.SUCCESS(f"gRPC (TF Serving API, {mode}) listening on {host}:{bound}"))
        stop.wait()
        self.stdout.write("shutting down")
        server.stop(grace).wait()
