"""Start and stop the servers under test, each on its own loopback port.

A server runs in its own process group (started here, stopped here by that
group id). It counts as up once its predict URL answers 200 to its request.
The peers (bench/peers/, one module each) run from their own venvs
(:mod:`bench.venvs`); :func:`peer` turns one into a :class:`ServerSpec`.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

from aiserver import devices
from bench import venvs
from bench.models import Workload
from bench.peers import NAMES

ROOT = Path(__file__).resolve().parent.parent
VENV_PY = ROOT / ".venv" / "bin" / "python"
VENV_GUNICORN = ROOT / ".venv" / "bin" / "gunicorn"


class PeerUnavailable(RuntimeError):
    """A peer that cannot run this workload here (its venv failed, or its protocol cannot carry the request)."""


def predictions(status: int, body: bytes) -> list[list[dict]]:
    """aiserver's answer (and the seed's) as rows: per row, one result per model (one image: ``result``)."""
    answer = json.loads(body)
    return answer["predictions"] if "predictions" in answer else [answer["result"]]


@dataclass(frozen=True)
class ServerSpec:
    """How to run one server: its command, environment, predict path (``{app}`` is filled in), the request it
    takes for the workload, whether it survives SIGSTOP while idle, and how to read its answer."""

    name: str
    argv: list[str]
    path: str
    workload: Workload
    answer: Callable[[int, bytes], list[list[dict]]]
    env: dict[str, str] = field(default_factory=dict)
    freeze: bool = True


def ours(
    *,
    store: Path,
    data_dir: Path,
    workload: Workload,
    batch_timeout_micros: int,
    max_batch_size: int,
    threads: int | None = None,
    workers: int | None = None,
) -> ServerSpec:
    """aiserver under gunicorn with its own config (aiserver/gunicorn.conf.py; its defaults unless given)."""
    env = {
        "YYAI_MODEL_STORE": str(store),
        "YYAI_DATA_DIR": str(data_dir),
        "DJANGO_HTTPS": "0",
        "GUNICORN_ACCESS_LOG": "",
        "YYAI_BATCH_TIMEOUT_MICROS": str(batch_timeout_micros),
        "YYAI_MAX_ROWS_PER_BATCH": str(max_batch_size),
        "YYAI_LOG_LEVEL": "WARNING",
    }
    if threads is not None:
        env["GUNICORN_THREADS"] = str(threads)
    if workers is not None:
        env["WEB_CONCURRENCY"] = str(workers)
    subprocess.run(
        [str(VENV_PY), "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        check=True,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
    )
    return ServerSpec(
        "aiserver",
        [str(VENV_GUNICORN), "-c", "aiserver/gunicorn.conf.py"],
        "/api/apps/{app}/predict/",
        workload,
        predictions,
        env,
    )


def seed(*, app_dir: Path, workload: Workload, threads: int) -> ServerSpec:
    """The seed's design (bench/peers/seed_django.py) under gunicorn, same thread count as ours."""
    argv = [
        str(VENV_GUNICORN),
        "-k",
        "gthread",
        "-w",
        "1",
        "--threads",
        str(threads),
        "--timeout",
        "120",
        "bench.peers.seed_django:application",
    ]
    env = {"BENCH_APP_DIR": str(app_dir), **devices.onednn_env()}
    return ServerSpec("seed design", argv, "/api/apps/{app}/predict/", workload, predictions, env)


def peer(name: str, *, app_dir: Path, workload: Workload, batch_timeout_micros: int, max_batch_size: int) -> ServerSpec:
    """The peer ``bench/peers/<name>_peer.py`` on ``app_dir``, from its venv; PeerUnavailable if it cannot run."""
    module = importlib.import_module(f"bench.peers.{name}_peer")
    request = module.request(workload)
    if request is None:
        raise PeerUnavailable(getattr(module, "CANNOT", {}).get(workload.key, "its protocol cannot carry this request"))
    try:
        python = venvs.ensure(name, ROOT / "bench" / "peers" / f"requirements-{name}.txt")
    except venvs.VenvFailed as exc:
        raise PeerUnavailable(str(exc)) from exc
    content_type, body = request
    env = {
        "BENCH_APP_DIR": str(app_dir),
        "BENCH_BATCH_TIMEOUT_MICROS": str(batch_timeout_micros),
        "BENCH_MAX_BATCH_SIZE": str(max_batch_size),
        **devices.onednn_env(),
        **getattr(module, "ENV", {}),
    }
    return ServerSpec(
        NAMES[name],
        [str(python), "-m", f"bench.peers.{name}_peer"],
        module.PATH,
        replace(workload, content_type=content_type, body=body),
        module.results,
        env,
        getattr(module, "FREEZE", True),
    )


RESUME_SETTLE_SECONDS = 0.5  # after SIGCONT, before the load starts


@dataclass(frozen=True)
class Running:
    """A started server: its predict URL, its main process id and its spec."""

    url: str
    pid: int
    spec: ServerSpec

    @property
    def workload(self) -> Workload:
        """The workload as this server takes it (its own protocol's body)."""
        return self.spec.workload

    def pause(self) -> None:
        """Freeze every process of the server (SIGSTOP to its group): an idle peer can still spin
        (LitServe's processes poll their queues, ~1 core between them), which would slow the one driven.
        A server that does not survive it (spec.freeze False) is left idle instead."""
        if self.spec.freeze:
            os.killpg(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.spec.freeze:
            os.killpg(self.pid, signal.SIGCONT)
            time.sleep(RESUME_SETTLE_SECONDS)

    def children(self) -> list[int]:
        """Process ids whose parent is the main process (gunicorn's workers)."""
        return sorted(pid for pid, (parent, _) in _processes().items() if parent == self.pid)

    def memory_mib(self) -> float:
        """What the server holds in memory: the proportional set size (shared pages split between the
        processes sharing them) of every process of its group and of their descendants, in MiB."""
        table = _processes()
        mine = {pid for pid, (_, group) in table.items() if group == self.pid} | {self.pid}
        grown = True
        while grown:  # descendants that left the group (a cluster's daemons start sessions of their own)
            more = {pid for pid, (parent, _) in table.items() if parent in mine} - mine
            mine |= more
            grown = bool(more)
        return sum(_pss_kib(pid) for pid in mine) / 1024


def _processes() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, process group) of every process."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(stat.parent.name)] = (int(fields[1]), int(fields[2]))
    return table


def _pss_kib(pid: int) -> int:
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:  # gone meanwhile, or not ours to read
        return 0
    return next((int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")), 0)


@contextmanager
def running(spec: ServerSpec, *, port: int, log: Path, timeout: float = 300.0) -> Iterator[Running]:
    """Run ``spec`` on 127.0.0.1:``port`` until the block ends."""
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "PYTHONPATH": str(ROOT),
        **spec.env,
    }
    url = f"http://127.0.0.1:{port}{spec.path.format(app=spec.workload.app)}"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            spec.argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_ready(proc, url, spec.workload, timeout, log)
        yield Running(url, proc.pid, spec)
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
    request = urllib.request.Request(
        url, data=workload.body, method="POST", headers={"Content-Type": workload.content_type}
    )
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
