"""The third hostile corpus, class by class, against a real gunicorn with two workers: server paths, inputs the
model itself refuses, limits checked before work, reserved names, and faults of the environment (a full disk, a
locked database). After each class the server is checked healthy and still serving the right answers.
"""

import json
import os
import shutil
import sqlite3
import struct
import subprocess
import threading
import time

import numpy as np
import pytest
import requests

from tests import modelkit, zoo
from tests.liveserver import ADMIN_PASSWORD, GunicornServer

pytestmark = pytest.mark.slow

AUTH = ("admin", ADMIN_PASSWORD)
TENSOR = {"instances": np.ones((1, *modelkit.SHAPE)).tolist()}


@pytest.fixture(scope="module")
def disk(tmp_path_factory):
    """A 3 MiB file system of its own (tmpfs), for the store: the disk-full cases fill it."""
    folder = tmp_path_factory.mktemp("small-disk")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.decode().strip()}); run as root")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture(scope="module")
def server(tmp_path_factory, disk):
    store = disk / "store"
    modelkit.regressor(store / "calc" / "m.h5", weight=1.0)
    zoo.tokens(store / "tokens" / "t.keras")
    root = tmp_path_factory.mktemp("images").resolve()
    (root / "sub").mkdir()
    (root / "sub" / "x.png").write_bytes(modelkit.png_bytes(255))
    (root / "loop1").symlink_to(root / "loop2")
    (root / "loop2").symlink_to(root / "loop1")
    (root / "self").symlink_to(root / "self")
    (root / "out").symlink_to("/etc")
    os.mkfifo(root / "fifo")
    data = tmp_path_factory.mktemp("data")
    env = {"YYAI_IMAGE_ROOT": str(root), "DATABASE_SQLITE_TIMEOUT": "1", "YYAI_THROTTLE_RELOAD": ""}
    with GunicornServer(store=store, data_dir=data, workers=2, env=env) as running:
        running.store, running.data = store, data
        yield running


def healthy(server) -> None:
    """Probes answer, the right answer comes back, and nothing logged a traceback."""
    assert requests.get(server.url("/healthz"), timeout=5).status_code == 200
    assert requests.get(server.url("/readyz"), timeout=5).status_code == 200
    for _ in range(4):  # new connections: both workers
        response = requests.post(server.url("/api/apps/calc/predict/"), json=TENSOR, timeout=10)
        assert response.status_code == 200 and response.json()["predictions"][0][0]["value"] == pytest.approx(64.0)
    assert "Traceback" not in server.log()


def error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, (response.status_code, response.text[:300])
    body = response.json()
    assert code is None or body["code"] == code, body
    return body


# -- 1. server paths ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, status, code",
    [
        ("sub/x.png", 200, None),
        ("loop1", 400, "bad_input"),
        ("self", 400, "bad_input"),
        ("self/x.png", 400, "bad_input"),
        ("x" * 300 + ".png", 400, "bad_input"),
        ("a/" * 2000 + "x.png", 400, "bad_input"),
        ("\udc80\udcff.png", 404, "path_not_found"),
        ("caf\u00e9/\U0001f600.png", 404, "path_not_found"),
        ("sub", 404, "path_not_found"),
        ("sub/", 404, "path_not_found"),
        (".", 404, "path_not_found"),
        ("fifo", 404, "path_not_found"),
        ("fifo/x", 404, "path_not_found"),
        ("sub/x.png/..", 404, "path_not_found"),
        ("out/passwd", 403, "path_outside_root"),
        ("../" * 40 + "etc/passwd", 403, "path_outside_root"),
        ("/etc/passwd", 403, "path_outside_root"),
        ("sub/../../x", 403, "path_outside_root"),
        ("line\nbreak", 404, "path_not_found"),
        ("x\x00.png", 400, "bad_input"),
    ],
)
def test_every_image_path_is_an_answer_never_a_500(server, path, status, code):
    started = time.monotonic()
    response = requests.post(server.url("/api/apps/calc/predict/"), json={"imgPath": path}, timeout=10)
    if status == 200:
        assert response.status_code == 200, response.text
    else:
        body = error(response, status, code)
        assert str(server.data) not in body["error"] and "/tmp/" not in body["error"]
    assert time.monotonic() - started < 5


def test_the_paths_left_the_server_healthy(server):
    healthy(server)
    refused = [line for line in server.log().splitlines() if "imgPath" in line and "refused" in line]
    assert refused and all("Traceback" not in line for line in refused)


# -- 2. inputs the model refuses ----------------------------------------------------------------------


def test_a_token_id_past_the_table_is_400_and_its_neighbours_are_served(server):
    good, bad = {"instances": [[1, 2, 3, 4, 5]]}, {"instances": [[1, 2, 3, 4, 999]]}
    answers = {}

    def call(i, body):
        answers[i] = requests.post(server.url("/api/apps/tokens/predict/"), json=body, timeout=30)

    threads = [threading.Thread(target=call, args=(i, bad if i % 3 == 0 else good)) for i in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i, response in answers.items():
        if i % 3 == 0:
            assert "999 is not in [0, 10)" in error(response, 400, "model_rejected_input")["error"]
        else:
            assert response.status_code == 200, response.text
    healthy(server)


# -- 3. limits before work ----------------------------------------------------------------------------


def test_five_million_empty_bytes_elements_are_refused_from_the_header(server):
    count = 5_200_000
    header = {
        "inputs": [
            {"name": "ids", "shape": [count], "datatype": "BYTES", "parameters": {"binary_data_size": 4 * count}}
        ]
    }
    head = json.dumps(header).encode()
    body = head + struct.pack("<I", 0) * count
    for _ in range(2):
        started = time.monotonic()
        response = requests.post(
            server.url("/v2/models/tokens/infer"),
            data=body,
            timeout=10,
            headers={"Inference-Header-Content-Length": str(len(head)), "Content-Type": "application/octet-stream"},
        )
        assert "limit" in error(response, 413)["error"]  # KServe's own error shape: no code
        print(f"refused in {time.monotonic() - started:.3f} s")
    lying = {
        "inputs": [{"name": "ids", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 4 * count}}]
    }
    head = json.dumps(lying).encode()
    response = requests.post(
        server.url("/v2/models/tokens/infer"),
        data=head + struct.pack("<I", 0) * count,
        timeout=10,
        headers={"Inference-Header-Content-Length": str(len(head))},
    )
    assert "more BYTES elements" in error(response, 400)["error"]
    many = {"instances": [""] * 1_000_000}
    started = time.monotonic()
    assert "rows" in error(requests.post(server.url("/v1/models/tokens:predict"), json=many, timeout=20), 400)["error"]
    print(f"1 M TF Serving instances refused in {time.monotonic() - started:.3f} s")
    healthy(server)


# -- 5. reserved names --------------------------------------------------------------------------------


def test_an_upload_may_not_take_a_route_name(server, tmp_path):
    model = modelkit.regressor(tmp_path / "m.h5", weight=1.0).read_bytes()
    for name in ("admin", "metrics", "v2"):
        response = requests.post(
            server.url(f"/api/apps/{name}/versions/"), files={"files": ("m.h5", model)}, auth=AUTH, timeout=60
        )
        assert "own routes" in error(response, 400)["error"]
        assert not (server.store / name).exists()
    assert requests.get(server.url("/admin/login/"), timeout=10).status_code == 200


# -- 6. faults of the environment ---------------------------------------------------------------------


def fill(disk, leave: int = 8 << 10):
    """Fill the small disk until ``leave`` bytes are free; returns the filler to delete."""
    filler = disk / "filler"
    free = shutil.disk_usage(disk).free
    with filler.open("wb") as out:
        out.write(b"\0" * max(0, free - leave))
    return filler


def test_a_full_disk_during_a_snapshot_and_an_upload_is_507_naming_the_app(server, disk, tmp_path):
    before = requests.get(server.url("/api/apps/calc/"), timeout=10).json()["version"]
    shutil.copy(
        modelkit.regressor(tmp_path / "new.h5", weight=2.0, input_shape=(32, 32, 1)), server.store / "calc" / "m.h5"
    )
    filler = fill(disk)
    try:
        body = error(
            requests.post(server.url("/api/apps/calc/reload/"), json={}, auth=AUTH, timeout=60),
            507,
            "insufficient_storage",
        )
        assert "app 'calc'" in body["error"] and "no space" in body["error"]
        upload = modelkit.regressor(tmp_path / "up.h5", weight=3.0, input_shape=(64, 64, 1)).read_bytes()
        body = error(
            requests.post(
                server.url("/api/apps/calc/versions/"), files={"files": ("up.h5", upload)}, auth=AUTH, timeout=60
            ),
            507,
            "insufficient_storage",
        )
        assert "app 'calc'" in body["error"]
        leftovers = [p.name for p in (server.store / "calc").rglob("*") if p.name.startswith((".tmp-", ".staging-"))]
        assert leftovers == [] and not any(p.name.isdigit() for p in (server.store / "calc").iterdir())
        assert requests.get(server.url("/api/apps/calc/"), timeout=10).json()["version"] == before
        healthy(server)
    finally:
        filler.unlink()
    shutil.copy(modelkit.regressor(tmp_path / "one.h5", weight=1.0), server.store / "calc" / "m.h5")
    assert requests.post(server.url("/api/apps/calc/reload/"), json={}, auth=AUTH, timeout=60).status_code == 200


def test_a_database_locked_past_its_timeout_is_503_for_writes_while_reads_and_predicts_go_on(server):
    holder = sqlite3.connect(server.data / "aiserver.sqlite3", timeout=5, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # in WAL mode: every other writer waits, readers go on
    try:
        response = requests.post(server.url("/api/apps/calc/reload/"), json={}, auth=AUTH, timeout=30)
        error(response, 503, "database_unavailable")
        assert response.headers["Retry-After"]
        assert requests.get(server.url("/api/apps/calc/"), auth=AUTH, timeout=30).status_code == 200
        for _ in range(4):
            assert requests.post(server.url("/api/apps/calc/predict/"), json=TENSOR, timeout=10).status_code == 200
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    unavailable = [line for line in server.log().splitlines() if "Service Unavailable" in line]
    assert unavailable and all(" WARNING " in line for line in unavailable), unavailable  # by design: no ERROR
    assert requests.post(server.url("/api/apps/calc/reload/"), json={}, auth=AUTH, timeout=60).status_code == 200
    healthy(server)


SLOW = """
import time


class Slow:
    def setup(self, context):
        if context.path("slow-setup").exists():  # the operator's switch: this load takes a while
            time.sleep(8)

    def postprocess(self, outputs, request, context):
        return {"ok": True}
"""


def test_a_reload_whose_worker_is_killed_stays_in_the_history_and_its_retry_is_safe(server):
    app = server.store / "slow"
    app.mkdir()
    (app / "app.toml").write_text('handler = "handler.py"\n')
    (app / "handler.py").write_text(SLOW)
    first = requests.post(server.url("/api/apps/slow/reload/"), json={}, auth=AUTH, timeout=60)
    assert first.status_code == 200, first.text
    (app / "slow-setup").touch()
    answers = []

    def call():
        try:
            answers.append(requests.post(server.url("/api/apps/slow/reload/"), json={}, auth=AUTH, timeout=60))
        except requests.ConnectionError:
            pass  # the connection died with the worker

    caller = threading.Thread(target=call)
    caller.start()

    def running():
        rows = requests.get(server.url("/api/reloads/?app=slow&status=running"), auth=AUTH, timeout=10).json()
        return rows["results"]

    deadline = time.monotonic() + 20
    while not running() and time.monotonic() < deadline:
        time.sleep(0.1)
    (event,) = running()
    os.kill(event["pid"], 9)  # the worker that answers the reload dies while it loads
    caller.join()
    assert not answers or answers[0].status_code >= 500
    (app / "slow-setup").unlink()

    def interrupted():
        rows = requests.get(server.url("/api/reloads/?app=slow"), auth=AUTH, timeout=10).json()["results"]
        return next((r for r in rows if r["id"] == event["id"] and r["status"] == "interrupted"), None)

    deadline = time.monotonic() + 60
    while not interrupted() and time.monotonic() < deadline:  # gunicorn's new worker marks it at its start
        time.sleep(0.5)
    found = interrupted()
    assert found and "retry with the same body is safe" in found["error"], found
    retry = requests.post(server.url("/api/apps/slow/reload/"), json={}, auth=AUTH, timeout=60)
    assert retry.status_code == 200 and retry.json()["converged"], retry.text
    assert retry.json()["new_version"] == first.json()["new_version"]
    assert requests.post(server.url("/api/apps/slow/predict/"), json={"instances": [1]}, timeout=10).json()["ok"]
    healthy(server)


def test_postgres_away_is_503_while_predicts_go_on(tmp_path):
    from tests.scaleout.conftest import fresh_database
    from tests.tcprelay import Relay

    store = tmp_path / "store"
    modelkit.regressor(store / "calc" / "m.h5", weight=1.0)
    relay = Relay(("127.0.0.1", 5432))
    try:
        with fresh_database() as url:
            through = url.replace("@127.0.0.1:5432/", f"@127.0.0.1:{relay.port}/")
            with GunicornServer(store=store, data_dir=tmp_path / "data", workers=2, database_url=through) as server:
                relay.cut()  # the database is away
                for response in (
                    requests.post(server.url("/api/apps/calc/reload/"), json={}, auth=AUTH, timeout=60),
                    requests.get(server.url("/api/apps/calc/"), timeout=60),
                ):
                    error(response, 503, "database_unavailable")
                    assert response.headers["Retry-After"]
                for _ in range(4):
                    assert requests.post(server.url("/api/apps/calc/predict/"), json=TENSOR, timeout=10).ok
                relay.mend()
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    answer = requests.post(server.url("/api/apps/calc/reload/"), json={}, auth=AUTH, timeout=60)
                    if answer.status_code == 200:
                        break
                    time.sleep(0.5)
                assert answer.status_code == 200, answer.text
                assert "Traceback" not in server.log()
    finally:
        relay.close()
