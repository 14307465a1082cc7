"""Chaos: 16 clients predict for 30 s on a real gunicorn (2 workers) while every 2 s a reload
tries a good, a corrupt or a half-copied version. Zero failed predictions; no response mixes versions."""

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from tests import modelkit
from tests.liveserver import ADMIN_PASSWORD, GunicornServer

pytestmark = pytest.mark.slow

CLIENTS, SECONDS, EVERY = 16, 30.0, 2.0
TENSOR = np.random.default_rng(0).random((1, *modelkit.SHAPE)).round(3)
WEIGHTS = {"1": (1.0, 10.0), "2": (2.0, 20.0)}  # two models per version: a mixed response is visible


def expected(version: str) -> list[float]:
    return [round(float(modelkit.expected_regression(w, TENSOR)[0, 0]), 2) for w in WEIGHTS[version]]


@pytest.fixture
def store(tmp_path):
    store = tmp_path / "store"
    for version, weights in WEIGHTS.items():
        for i, weight in enumerate(weights):
            modelkit.regressor(store / "app" / version / f"m{i}.h5", weight=weight)
        (store / "app" / version / "READY").touch()
    (store / "app" / "app.toml").write_text("[output]\ndecimals = 2\n")  # answers compared exactly
    modelkit.regressor(tmp_path / "good.h5", weight=5.0)
    return store


def test_predictions_survive_reload_chaos(store, tmp_path):
    with GunicornServer(store=store, data_dir=tmp_path / "data", workers=2, env={"GUNICORN_THREADS": "16"}) as server:
        failures, answers, stop = [], {"1": 0, "2": 0}, threading.Event()
        lock = threading.Lock()

        def client():
            session = requests.Session()
            while not stop.is_set():
                try:
                    response = session.post(
                        server.url("/api/apps/app/predict/"), json={"instances": TENSOR.tolist()}, timeout=30
                    )
                    body = response.json()
                    got = [r["value"] for r in body["predictions"][0]]
                    if response.status_code != 200 or got != expected(body["version"]):
                        failures.append((response.status_code, body))
                    with lock:
                        answers[body["version"]] += 1
                except Exception as exc:  # a refused connection or a bad body is a failure too
                    failures.append(repr(exc))

        def reload(version=None):
            return requests.post(
                server.url("/api/apps/app/reload/"),
                auth=("admin", ADMIN_PASSWORD),
                json={} if version is None else {"version": version},
                timeout=120,
            )

        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        outcomes, refused, started, step = [], [], time.monotonic(), 0
        try:
            while time.monotonic() - started < SECONDS:
                kind = ("good", "corrupt", "half")[step % 3]
                if kind == "good":
                    answer = reload("1" if step % 2 else "2")
                    outcomes.append((kind, answer.status_code))
                    if answer.status_code != 200:
                        refused.append(answer.text)
                elif kind == "corrupt":
                    modelkit.random_bytes(store / "app" / "3" / "m0.h5")
                    (store / "app" / "3" / "READY").touch()
                    outcomes.append((kind, reload("latest").status_code))
                    shutil.rmtree(store / "app" / "3")
                else:
                    half = store / "app" / "4"  # a copy still in progress: no READY, fresh files
                    half.mkdir()
                    modelkit.truncate(Path(shutil.copy(tmp_path / "good.h5", half / "m0.h5")))
                    outcomes.append((kind, reload("latest").status_code))
                    shutil.rmtree(store / "app" / "4")
                step += 1
                time.sleep(EVERY)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        assert failures == [], failures[:5]
        assert answers["1"] > 0 and answers["2"] > 0
        assert {code for kind, code in outcomes if kind == "good"} == {200}, refused
        assert {code for kind, code in outcomes if kind == "corrupt"} == {422}
        assert {code for kind, code in outcomes if kind == "half"} == {200}, "latest skips the half-copied folder"
        assert sum(answers.values()) > CLIENTS * SECONDS  # clients really ran the whole time
