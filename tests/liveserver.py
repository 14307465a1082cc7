"""Run the real gunicorn configuration on a free loopback port, for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).with_name("gunicorn")
ADMIN_PASSWORD = "pw-admin-e2e-123"
READY_LINE = "model store ready in"  # logged by yyai.lifecycle.startup.start() in each worker


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GunicornServer:
    """``aiserver`` under gunicorn with its own data folder; migrated, with an ``admin`` superuser."""

    def __init__(
        self,
        *,
        store: Path,
        data_dir: Path,
        workers: int = 1,
        database_url: str | None = None,
        env: dict[str, str] | None = None,
    ):
        self.port = free_port()
        self.workers = workers
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "aiserver.settings",
            "DJANGO_HTTPS": "0",
            "YYAI_DATA_DIR": str(data_dir),
            "YYAI_MODEL_STORE": str(store),
            "YYAI_SYNC_SECONDS": "1",
            "WEB_CONCURRENCY": str(workers),
            "GUNICORN_THREADS": "8",
            "GUNICORN_ACCESS_LOG": "",
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD,
            **({"DATABASE_URL": database_url} if database_url else {}),
            **(env or {}),
        }
        self.log_path = Path(data_dir) / f"gunicorn-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def manage(self, *commands: tuple[str, ...]) -> str:
        """Run management commands, each a tuple of its arguments, one after the other in one process (as
        ``manage.py`` would, without paying Django's and TensorFlow's start for each)."""
        code = (
            "import json, sys, django; from django.core.management import call_command; "
            "from aiserver import bootstrap; bootstrap.prepare(); django.setup(); "
            "[call_command(*c) for c in json.loads(sys.argv[1])]"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, json.dumps(commands)],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    def start(self, *, migrate: bool = True, timeout: float = 120) -> "GunicornServer":
        if migrate:
            self.manage(("migrate", "--noinput"), ("ensure_admin",))
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [str(GUNICORN), "-c", "aiserver/gunicorn.conf.py"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()  # never leak a server when start-up fails
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.log()[-5000:]}")
            try:
                ready = requests.get(self.url("/readyz"), timeout=2).status_code == 200
            except (requests.ConnectionError, requests.Timeout):  # bound socket, workers still loading
                ready = False
            if ready and self.log().count(READY_LINE) >= self.workers:  # /readyz answers from one worker only
                return
            time.sleep(0.2)
        raise TimeoutError(f"gunicorn not ready after {timeout}s:\n{self.log()[-5000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def url(self, path: str) -> str:
        return self.base + path

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def __enter__(self) -> "GunicornServer":
        """Start it (migrated), unless ``start()`` already did: ``with server.start(migrate=False):``."""
        return self if self.process is not None and self.process.poll() is None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
