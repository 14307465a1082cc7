"""The demo apps under the real gunicorn configuration, over real HTTP: what `make run` serves."""

import base64
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from aiserver import balance
from tests.liveserver import ADMIN_PASSWORD, GunicornServer
from yyai.demo_models import SAMPLE_DIGIT, build_demo_models

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    build_demo_models(store, log=lambda line: None)
    with GunicornServer(store=store, data_dir=tmp_path_factory.mktemp("data"), workers=2) as running:
        running.store = store
        yield running


def test_every_demo_app_is_ready(server):
    apps = requests.get(server.url("/api/apps/"), timeout=10).json()["results"]
    assert {(a["name"], a["state"]) for a in apps} == {
        ("digits", "AVAILABLE"),
        ("facescore", "AVAILABLE"),
        ("predictsex", "AVAILABLE"),
        ("faces", "AVAILABLE"),
    }
    assert requests.get(server.url("/readyz"), timeout=10).status_code == 200


def test_digit_upload_returns_the_right_digit(server):
    with (server.store / "digits" / "sample.png").open("rb") as image:
        response = requests.post(server.url("/api/apps/digits/predict/"), files={"img": image}, timeout=30)
    assert response.status_code == 200, response.text
    [result] = response.json()["result"]
    assert result["label"] == str(SAMPLE_DIGIT) and result["score"] > 0.5


def test_placeholder_apps_say_demo(server):
    for app in ("facescore", "predictsex"):
        body = requests.get(server.url(f"/api/apps/{app}/predict/"), timeout=30).json()
        assert body["demo"] is True and body["result"]
    face = requests.get(server.url("/facescore/"), timeout=30).json()["result"]
    assert [r["name"] for r in face] == ["facescore_cnn.h5", "facescore_small.keras"]
    assert all(1.0 <= r["value"] <= 5.0 for r in face)


def test_seed_reload_route_with_basic_auth(server):
    response = requests.post(server.url("/predictsex_loadmodel/"), auth=("admin", ADMIN_PASSWORD), timeout=60)
    assert response.status_code == 200 and response.json()["app"] == "predictsex"
    assert requests.post(server.url("/predictsex_loadmodel/"), timeout=10).status_code == 401
    refused = requests.get(server.url("/predictsex_loadmodel/"), auth=("admin", ADMIN_PASSWORD), timeout=10)
    assert refused.status_code == 405 and "POST" in refused.json()["error"]  # safe methods change nothing


def test_bad_input_is_json_not_500(server):
    response = requests.post(server.url("/api/apps/digits/predict/"), files={"img": ("x.png", b"nope")}, timeout=10)
    assert response.status_code == 415 and response.json()["code"] == "not_an_image"


def test_the_faces_pipeline_under_concurrent_load(server):
    """16 clients at once, on both workers: every answer finds the same face and runs both apps on it."""
    photo = (server.store / "faces" / "sample.jpg").read_bytes()

    def predict(i: int) -> tuple[int, list]:
        if i % 4 == 3:  # the seed's client among them: the photo back, drawn on
            response = requests.post(server.url("/faces/predictor"), data=base64.b64encode(photo), timeout=60)
            return response.status_code, [len(base64.b64decode(response.content))]
        response = requests.post(server.url("/api/apps/faces/predict/"), files={"img": photo}, timeout=60)
        faces = response.json()["faces"]
        return response.status_code, [(f["box"], sorted(f["apps"]), len(f["apps"]["facescore"])) for f in faces]

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(predict, range(64)))
    assert {status for status, _ in answers} == {200}
    found = {repr(faces) for i, (_, faces) in enumerate(answers) if i % 4 != 3}
    assert len(found) == 1 and "['facescore', 'predictsex'], 2" in found.pop()
    assert all(size > 10_000 for i, (_, [size]) in enumerate(answers) if i % 4 == 3)
    assert requests.get(server.url("/readyz"), timeout=10).status_code == 200


def test_each_worker_runs_on_cpus_of_its_own_and_every_thread_it_started_too(server):
    """Two workers on a CPU host (YYAI_PIN_WORKERS=auto): disjoint halves of the CPUs the master may use, for
    every thread of each worker (its event loop, pool, batchers and TensorFlow's)."""
    allowed = os.sched_getaffinity(server.process.pid)
    if len(allowed) < 2:
        pytest.skip("one CPU: both workers share it, nothing is pinned")
    per_worker = []
    for pid in _workers(server):
        tasks = Path(f"/proc/{pid}/task").iterdir()
        masks = {frozenset(os.sched_getaffinity(int(task.name))) for task in tasks}
        assert len(masks) == 1, f"worker {pid}'s threads run on different CPUs: {masks}"
        per_worker.append(masks.pop())
    assert len(per_worker) == 2 and not per_worker[0] & per_worker[1]
    assert per_worker[0] | per_worker[1] == allowed


def _workers(server) -> list[int]:
    return [int(pid) for pid in os.listdir("/proc") if pid.isdigit() and _parent(pid) == server.process.pid]


def _connections_per_worker(server) -> list[int]:
    """Established connections to the server's port held by each of its workers (from /proc)."""
    established = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in open(table).read().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == server.port and fields[3] == "01":
                established.add(fields[9])
    counts = []
    for pid in _workers(server):
        fds = Path(f"/proc/{pid}/fd")
        links = [os.readlink(fd) for fd in fds.iterdir() if os.path.islink(fd)]
        counts.append(sum(link[8:-1] in established for link in links if link.startswith("socket:[")))
    return sorted(counts)


def _parent(pid: str) -> int:
    try:
        return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def test_connections_opened_at_once_end_up_spread_over_the_workers(server):
    """40 keep-alive clients connecting together tend to land on one worker; after a few requests each, the
    crowded worker has closed connections (``Connection: close``) until the two hold their share (+- SLACK)."""
    request = b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"
    clients = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(40)]
    closed = 0
    try:
        for _ in range(8):
            for index, client in enumerate(clients):
                client.sendall(request)
                answer = b""
                while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
                    answer += client.recv(4096)
                assert answer.startswith(b"HTTP/1.1 200"), answer
                if b"connection: close" in answer.lower():
                    client.close()
                    clients[index] = socket.create_connection(("127.0.0.1", server.port))
                    closed += 1
        counts = _connections_per_worker(server)
    finally:
        for client in clients:
            client.close()
    assert sum(counts) == 40 and len(counts) == 2
    assert counts[1] - counts[0] <= 2 * balance.SLACK + 2, (counts, closed)
