"""Start and stop the servers under test, each on its own loopback port.

A server runs in its own process group (started here, stopped here by that
group id). It counts as up once its predict URL answers 200 to the workload's
request.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from bench.models import Workload

ROOT = Path(__file__).resolve().parent.parent
VENV_PY = ROOT / ".venv" / "bin" / "python"
VENV_GUNICORN = ROOT / ".venv" / "bin" / "gunicorn"
BENCH_PY = ROOT / "bench" / ".work" / "venv-bench" / "bin" / "python"


@dataclass(frozen=True)
class ServerSpec:
    """How to run one server: its command, environment and predict path (``{app}`` is filled in)."""

    name: str
    argv: list[str]
    path: str
    env: dict[str, str] = field(default_factory=dict)


def ours(*, store: Path, data_dir: Path, batch_timeout_micros: int, max_batch_size: int,
         threads: int | None = None, workers: int | None = None) -> ServerSpec:
    """aiserver under gunicorn with its own config (aiserver/gunicorn.conf.py; its defaults unless given)."""
    env = {"YYAI_MODEL_STORE": str(store), "YYAI_DATA_DIR": str(data_dir), "DJANGO_HTTPS": "0",
           "GUNICORN_ACCESS_LOG": "", "YYAI_BATCH_TIMEOUT_MICROS": str(batch_timeout_micros),
           "YYAI_MAX_ROWS_PER_BATCH": str(max_batch_size), "YYAI_LOG_LEVEL": "WARNING"}
    if threads is not None:
        env["GUNICORN_THREADS"] = str(threads)
    if workers is not None:
        env["WEB_CONCURRENCY"] = str(workers)
    subprocess.run([str(VENV_PY), "manage.py", "migrate", "--noinput"], cwd=ROOT, check=True,
                   env={**os.environ, **env}, stdout=subprocess.DEVNULL)
    return ServerSpec("aiserver", [str(VENV_GUNICORN), "-c", "aiserver/gunicorn.conf.py"],
                      "/api/apps/{app}/predict/", env)


def seed(*, app_dir: Path, threads: int) -> ServerSpec:
    """The seed's design (bench/peers/seed_django.py) under gunicorn, same thread count as ours."""
    argv = [str(VENV_GUNICORN), "-k", "gthread", "-w", "1", "--threads", str(threads), "--timeout", "120",
            "bench.peers.seed_django:application"]
    return ServerSpec("seed design", argv, "/api/apps/{app}/predict/", {"BENCH_APP_DIR": str(app_dir)})


def litserve(*, app_dir: Path, batch_timeout_micros: int, max_batch_size: int) -> ServerSpec:
    """LitServe with batching (bench/peers/litserve_peer.py), from the bench venv."""
    env = {"BENCH_APP_DIR": str(app_dir), "BENCH_BATCH_TIMEOUT_MICROS": str(batch_timeout_micros),
           "BENCH_MAX_BATCH_SIZE": str(max_batch_size)}
    return ServerSpec("LitServe", [str(BENCH_PY), "-m", "bench.peers.litserve_peer"], "/predict", env)


RESUME_SETTLE_SECONDS = 0.5  # after SIGCONT, before the load starts


@dataclass(frozen=True)
class Running:
    """A started server: its predict URL and its main process id."""

    url: str
    pid: int

    def pause(self) -> None:
        """Freeze every process of the server (SIGSTOP to its group): an idle peer can still spin
        (LitServe's processes poll their queues, ~1 core between them), which would slow the one driven."""
        os.killpg(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.pid, signal.SIGCONT)
        time.sleep(RESUME_SETTLE_SECONDS)

    def children(self) -> list[int]:
        """Process ids whose parent is the main process (gunicorn's workers)."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.pid:
                found.append(int(stat.parent.name))
        return sorted(found)


@contextmanager
def running(spec: ServerSpec, *, port: int, workload: Workload, log: Path, timeout: float = 180.0
            ) -> Iterator[Running]:
    """Run ``spec`` on 127.0.0.1:``port`` until the block ends."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "HOST": "127.0.0.1", "PORT": str(port),
           "PYTHONPATH": str(ROOT), **spec.env}
    url = f"http://127.0.0.1:{port}{spec.path.format(app=workload.app)}"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(spec.argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        _wait_ready(proc, url, workload, timeout, log)
        yield Running(url, proc.pid)
    finally:
        with suppress(ProcessLookupError):  # gone already when it failed to start
            os.killpg(proc.pid, signal.SIGCONT)  # a paused server could not act on SIGTERM
        stop(proc)


def _wait_ready(proc: subprocess.Popen, url: str, workload: Workload, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready; see {log}")
        try:
            if post(url, workload, timeout=10)[0] == 200:
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server not ready after {timeout:.0f} s; see {log}")


def post(url: str, workload: Workload, *, timeout: float = 10) -> tuple[int, bytes]:
    """One request with the workload's body; (status, body)."""
    request = urllib.request.Request(url, data=workload.body, method="POST",
                                     headers={"Content-Type": workload.content_type})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (the one started here), SIGKILL if it lingers."""
    for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        time.sleep(1)  # let the workers finish their own shutdown, then clear any left in the group
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return
    print(f"warning: server pid {proc.pid} did not stop", file=sys.stderr)
