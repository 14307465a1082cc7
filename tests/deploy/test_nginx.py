"""Two instances behind Debian's nginx running deploy/nginx.conf, sharing one PostgreSQL database and one model store.

The config is used as written except for the instance lines and the listen
port. nginx reaches the instances from 127.0.0.1, the one trusted proxy
(``YYAI_TRUSTED_PROXIES``); every caller here connects from 127.0.0.3, so a
forwarded header it sends must never be believed. Skipped when nginx is
missing (``make nginx`` installs it); with ``YYAI_REQUIRE_NGINX=1`` (CI) that is a failure.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tests import modelkit
from tests.liveserver import ADMIN_PASSWORD, ROOT, GunicornServer, free_port
from tests.scaleout.conftest import fresh_database

pytestmark = pytest.mark.slow

NGINX = Path(shutil.which("nginx") or "/usr/sbin/nginx")
PROXY = "127.0.0.1"  # nginx's address towards the instances: the only trusted proxy
CALLER = "127.0.0.3"  # every caller's address: never trusted
TENSOR = json.dumps({"instances": np.ones((1, *modelkit.SHAPE)).tolist()}).encode()
PREDICT = "/api/apps/calc/predict/"
ADMIN = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()}


def render(config: str, *, listen: int, instances: list[int]) -> str:
    """deploy/nginx.conf with one upstream line per instance and a loopback listen port; nothing else changes."""
    upstream = re.compile(r"^(?P<indent>\s*)server app:8000(?P<options>[^;]*);", re.M)
    port = re.compile(r"^(?P<indent>\s*)listen 80;", re.M)
    assert len(upstream.findall(config)) == 1 and len(port.findall(config)) == 1, "deploy/nginx.conf changed shape"
    config = upstream.sub(
        lambda m: "\n".join(f"{m['indent']}server {PROXY}:{p}{m['options']};" for p in instances), config
    )
    return port.sub(lambda m: f"{m['indent']}listen 127.0.0.1:{listen};", config)


class Nginx:
    """Debian's nginx in the foreground with deploy/nginx.conf included in a minimal main configuration."""

    def __init__(self, folder: Path, instances: list[int]):
        self.port = free_port()
        self.folder = folder
        folder.mkdir(parents=True)
        (folder / "aiserver.conf").write_text(
            render((ROOT / "deploy" / "nginx.conf").read_text(), listen=self.port, instances=instances)
        )
        temp = "\n".join(
            f"    {kind}_temp_path {folder}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (folder / "main.conf").write_text(
            ("user root;\n" if os.geteuid() == 0 else "")
            + f"daemon off;\nworker_processes 1;\npid {folder}/nginx.pid;\nerror_log {folder}/error.log info;\n"
            + f"events {{ worker_connections 512; }}\nhttp {{\n    access_log {folder}/access.log;\n{temp}\n"
            + f"    include {folder}/aiserver.conf;\n}}\n"
        )
        self.process: subprocess.Popen | None = None

    def start(self) -> "Nginx":
        command = [str(NGINX), "-p", str(self.folder), "-c", str(self.folder / "main.conf")]
        checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stderr
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.error_log()
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise TimeoutError("nginx did not listen within 10 s:\n" + self.error_log())

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def error_log(self) -> str:
        path = self.folder / "error.log"
        return path.read_text() if path.exists() else ""


def call(
    port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None, source: str = CALLER
) -> tuple[int, dict, bytes]:
    """One request from ``source`` to 127.0.0.1:``port``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=(source, 0))
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def predict_version(port: int, **kwargs) -> str:
    status, _, body = call(port, "POST", PREDICT, TENSOR, **kwargs)
    assert status == 200, body
    return json.loads(body)["version"]


def access_lines(server: GunicornServer) -> dict[str, dict]:
    """The instance's JSON access-log lines so far, by request id."""
    lines = {}
    for line in server.log().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("logger") == "yyai.access" and "request_id" in record:
                lines[record["request_id"]] = record
    return lines


def served(servers: list[GunicornServer], request_ids: list[str], timeout: float = 5.0) -> dict[str, tuple[int, dict]]:
    """Request id -> (index of the server that logged it, its access-log line); waits until all are logged."""
    deadline = time.monotonic() + timeout
    while True:
        found = {
            rid: (i, lines[rid])
            for i, server in enumerate(servers)
            for lines in [access_lines(server)]
            for rid in request_ids
            if rid in lines
        }
        if len(found) == len(request_ids) or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """Instances A and B (one worker each) and nginx in front of both."""
    if not NGINX.exists():
        reason = f"no nginx at {NGINX}; run `make nginx` (apt-get install nginx)"
        if os.environ.get("YYAI_REQUIRE_NGINX") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("fleet")
    store = root / "store"
    modelkit.regressor(store / "calc" / "m.h5", weight=1.0)
    env = {"YYAI_TRUSTED_PROXIES": f"{PROXY}/32", "YYAI_LOG_JSON": "1"}
    with fresh_database() as database_url:
        a, b = (
            GunicornServer(store=store, data_dir=root / name, database_url=database_url, env=env) for name in ("a", "b")
        )
        a.manage(("migrate", "--noinput"), ("ensure_admin",))  # once: two migrations at once would race
        b.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with ThreadPoolExecutor(2) as pool:  # both load TensorFlow at once
                for started in [pool.submit(server.start, migrate=False) for server in (a, b)]:
                    started.result()
            nginx = Nginx(root / "nginx", [a.port, b.port]).start()
            try:
                yield store, a, b, nginx
            finally:
                nginx.stop()
        finally:
            a.stop()
            b.stop()


def test_predicts_through_nginx_reach_both_instances(fleet):
    _, a, b, nginx = fleet
    ids = [f"spread-{i}" for i in range(8)]
    for rid in ids:
        status, headers, _ = call(nginx.port, "POST", PREDICT, TENSOR, {"X-Request-ID": rid})
        assert status == 200 and headers["x-request-id"] == rid
    where = [index for index, _ in served([a, b], ids).values()]
    assert len(where) == len(ids) and where.count(0) and where.count(1), where


def test_forwarded_headers_believed_only_from_the_proxy(fleet):
    _, a, b, nginx = fleet
    spoof = {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https"}

    # A caller's own claims, through nginx: nginx overwrites the scheme, and the instance takes the address
    # nginx saw (the rightmost hop that is not a trusted proxy), not the one the caller wrote.
    call(nginx.port, "POST", PREDICT, TENSOR, {**spoof, "X-Request-ID": "via-nginx"})
    _, line = served([a, b], ["via-nginx"])["via-nginx"]
    assert line["remote_addr"] == CALLER, line
    status, _, body = call(nginx.port, "GET", "/api/", headers={**spoof, **ADMIN})
    assert status == 200 and json.loads(body)["apps"].startswith(f"http://127.0.0.1:{nginx.port}/"), body

    # The same claims sent straight to an instance, from an address that is not a proxy: ignored.
    call(a.port, "POST", PREDICT, TENSOR, {**spoof, "X-Request-ID": "direct-untrusted"})
    assert served([a], ["direct-untrusted"])["direct-untrusted"][1]["remote_addr"] == CALLER
    status, _, body = call(a.port, "GET", "/api/", headers={**spoof, **ADMIN})
    assert status == 200 and json.loads(body)["apps"].startswith("http://"), body

    # From the proxy's address the same headers are believed (so the two checks above can fail).
    call(a.port, "POST", PREDICT, TENSOR, {**spoof, "X-Request-ID": "direct-proxy"}, source=PROXY)
    assert served([a], ["direct-proxy"])["direct-proxy"][1]["remote_addr"] == "6.6.6.6"
    status, _, body = call(a.port, "GET", "/api/", headers={**spoof, **ADMIN}, source=PROXY)
    assert status == 200 and json.loads(body)["apps"].startswith(f"https://127.0.0.1:{a.port}/"), body


def test_reload_through_nginx_reaches_both_instances(fleet, tmp_path):
    store, a, b, nginx = fleet
    old = predict_version(nginx.port)
    staged = modelkit.regressor(tmp_path / "m.h5", weight=2.0)
    shutil.copy(staged, store / "calc" / "m.h5")
    status, _, body = call(nginx.port, "POST", "/api/apps/calc/reload/", b"{}", ADMIN)
    assert status == 200, body
    new = json.loads(body)["new_version"]
    assert new != old
    for server in (a, b):  # one answered the reload; the other follows through the database generation
        deadline = time.monotonic() + 5
        while (seen := predict_version(server.port)) != new:
            assert time.monotonic() < deadline, f"port {server.port} still serves {seen} 5 s after the reload"
            time.sleep(0.1)


def test_killed_instance_loses_no_predict(fleet):
    _, a, b, nginx = fleet
    stop = threading.Event()
    killed = threading.Event()
    results: list[tuple[bool, int]] = []  # (sent after the kill, status)

    def client() -> None:
        while not stop.is_set():
            after = killed.is_set()
            try:
                status = call(nginx.port, "POST", PREDICT, TENSOR)[0]
            except OSError as exc:  # nginx itself never refuses; record it as a failure
                status = -1
                print("client error:", exc)
            results.append((after, status))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        os.killpg(b.process.pid, signal.SIGKILL)  # master and worker at once, mid-traffic: a crashed host
        killed.set()
        time.sleep(2.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    statuses = [status for _, status in results]
    assert sum(after for after, _ in results) >= 20, "too little traffic after the kill to show anything"
    assert set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    # nginx did meet the dead instance (and so retried on A): the test exercised failover, not luck
    assert f"127.0.0.1:{b.port}" in nginx.error_log(), nginx.error_log()[-2000:]
