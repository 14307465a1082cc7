"""One version everywhere: after a reload answers, every worker and host serves it, whatever happens on disk.

Real gunicorn: 3 workers on SQLite, and two instances (3 + 2 workers) sharing PostgreSQL and one model
store. Every check sends predicts on fresh connections, so they land on every worker.
"""

import os
import shutil
import signal
import threading
import time

import numpy as np
import pytest
import requests

from tests import modelkit
from tests.liveserver import ADMIN_PASSWORD, GunicornServer

pytestmark = pytest.mark.slow

TENSOR = {"instances": np.ones((1, *modelkit.SHAPE)).tolist()}
AUTH = ("admin", ADMIN_PASSWORD)


def versions(servers, count: int = 100) -> set[str]:
    """The versions answering ``count`` predicts, each on a new connection, round-robin over ``servers``."""
    seen = set()
    for i in range(count):
        response = requests.post(servers[i % len(servers)].url("/api/apps/calc/predict/"), json=TENSOR, timeout=10)
        assert response.status_code == 200, response.text
        seen.add(response.json()["version"])
    return seen


def reload(server, **body) -> dict:
    response = requests.post(server.url("/api/apps/calc/reload/"), json=body, auth=AUTH, timeout=90)
    assert response.status_code == 200, response.text
    return response.json()


def copy_weights(store, tmp_path, weight: float) -> None:
    staged = modelkit.regressor(tmp_path / "staged" / f"{weight}.h5", weight=weight)
    shutil.copy(staged, store / "calc" / "m.h5")  # in place, as an operator does


def detail(server) -> dict:
    return requests.get(server.url("/api/apps/calc/"), timeout=10).json()


def wait_until(check, limit: float = 30.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not true within {limit}s: {check.__doc__ or check}")


def test_three_workers_serve_the_reloaded_version_whatever_lands_on_disk(flat_store, tmp_path):
    with GunicornServer(store=flat_store, data_dir=tmp_path / "data", workers=3) as server:
        for weight in (2.0, 3.0):
            copy_weights(flat_store, tmp_path, weight)
            body = reload(server)
            assert body["converged"] and len(body["processes"]) == 3
            assert versions([server]) == {body["new_version"]}, "a predict after the reload got another version"
        target = body["new_version"]

        # right after a reload, a corrupt file lands in the folder and the copied weights are deleted
        modelkit.random_bytes(flat_store / "calc" / "stray.h5")
        (flat_store / "calc" / "m.h5").unlink()
        time.sleep(2.5)  # two sync periods: nothing re-scans the folder
        assert versions([server]) == {target}
        assert not detail(server)["degraded"]

        # a worker killed and restarted by gunicorn comes back on the target, not on what the folder holds
        pids = {p["pid"] for p in detail(server)["processes"]}
        os.kill(next(iter(pids)), signal.SIGKILL)

        def restarted():
            """a new worker joined the fleet"""
            return {p["pid"] for p in detail(server)["processes"]} - pids

        wait_until(restarted, 60)
        assert versions([server]) == {target}
        fresh = [p for p in detail(server)["processes"] if p["pid"] in restarted()]
        assert [(p["version"], p["error"]) for p in fresh] == [(target, None)]


def test_two_instances_on_postgres_follow_every_reload_and_a_race_ends_on_one_version(
    flat_store, tmp_path, postgres_url
):
    a = GunicornServer(store=flat_store, data_dir=tmp_path / "a", workers=3, database_url=postgres_url)
    b = GunicornServer(store=flat_store, data_dir=tmp_path / "b", workers=2, database_url=postgres_url)
    with a, b:
        snapshots = []
        for weight, leader in ((2.0, a), (3.0, b)):
            copy_weights(flat_store, tmp_path, weight)
            body = reload(leader)
            assert body["converged"] and len(body["processes"]) == 5, body["processes"]
            assert versions([a, b]) == {body["new_version"]}
            snapshots.append(body["new_version"])

        # two reloads racing from the two instances, to two different (snapshot) versions
        answers = {}

        def race(server, version):
            answers[version] = requests.post(
                server.url("/api/apps/calc/reload/"), json={"version": version}, auth=AUTH, timeout=90
            )

        racers = [
            threading.Thread(target=race, args=(a, snapshots[0])),
            threading.Thread(target=race, args=(b, snapshots[1])),
        ]
        for t in racers:
            t.start()
        for t in racers:
            t.join()
        assert {r.status_code for r in answers.values()} <= {200, 409}, {v: r.text for v, r in answers.items()}

        def settled():
            """every live process serves the one target"""
            info = detail(a)
            return info["target_version"] if not info["degraded"] and len(info["processes"]) == 5 else None

        target = wait_until(settled)
        assert target in snapshots and versions([a, b]) == {target}
        winner = answers[target]
        assert winner.status_code == 200 and winner.json()["converged"]


TAGGED = """
class Tagged:
    def postprocess(self, outputs, request, context):
        calc = context.predict("calc", instances=request.instances)
        return {{"tag": {tag!r}, "calc": calc["predictions"], "calc_version": calc["version"]}}
"""


def test_a_changed_handler_serves_on_every_worker_once_its_reload_answers(flat_store, tmp_path):
    """The handler file is part of the flat version: the reload freezes it, every worker loads that copy."""
    app = flat_store / "tagged"
    app.mkdir()
    (app / "app.toml").write_text('handler = "handler.py"\n')
    (app / "handler.py").write_text(TAGGED.format(tag="one"))

    def tags(server) -> set[tuple]:
        seen = set()
        for _ in range(60):  # a new connection each: every worker answers some
            response = requests.post(server.url("/api/apps/tagged/predict/"), json=TENSOR, timeout=10)
            assert response.status_code == 200, response.text
            body = response.json()
            seen.add((body["version"], body["tag"], body["calc"][0][0]["value"]))
        return seen

    with GunicornServer(store=flat_store, data_dir=tmp_path / "data", workers=3) as server:
        first = tags(server)
        assert len(first) == 1 and next(iter(first))[1:] == ("one", 64.0)
        (app / "handler.py").write_text(TAGGED.format(tag="two"))
        response = requests.post(server.url("/api/apps/tagged/reload/"), json={}, auth=AUTH, timeout=90)
        assert response.status_code == 200 and response.json()["converged"], response.text
        assert tags(server) == {(response.json()["new_version"], "two", 64.0)}
        (app / "handler.py").write_text("class Tagged(:\n")  # a broken edit, reloaded: 422, the old one serves
        broken = requests.post(server.url("/api/apps/tagged/reload/"), json={}, auth=AUTH, timeout=90)
        assert broken.status_code == 422 and "cannot import it (line 1): SyntaxError" in broken.json()["error"]
        assert tags(server) == {(response.json()["new_version"], "two", 64.0)}
