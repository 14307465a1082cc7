"""More apps than fit: under YYAI_MEMORY_BUDGET, real gunicorn workers keep answering every app correctly.

Two workers, eight apps of about 4 MiB of weights each (one pinned) and a 20 MiB budget per worker: start-up
loads what fits and puts the rest on standby; concurrent traffic across all of them loads standby apps on demand
and unloads the least recently used idle ones, and no request fails. A reload of an app on standby in a worker
converges (the worker loads the new target on its next request, never the old one).
"""

import random
import re
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from tests import modelkit
from tests.liveserver import ADMIN_PASSWORD, GunicornServer

pytestmark = pytest.mark.slow

APPS = [f"app{i}" for i in range(1, 9)]  # appN answers N * sum(x)
TENSOR = {"instances": np.ones((1, *modelkit.SHAPE)).tolist()}  # sum(x) = 64


@pytest.fixture
def store(tmp_path):
    store = tmp_path / "store"
    for i, app in enumerate(APPS, start=1):
        modelkit.wide_regressor(store / app / "m.h5", weight=float(i))
    (store / "app8" / "app.toml").write_text("[memory]\npinned = true\n")
    return store


def predict(server, app: str) -> requests.Response:
    return requests.post(server.url(f"/api/apps/{app}/predict/"), json=TENSOR, timeout=120)


def metric(text: str, name: str, app: str | None = None) -> float:
    label = f'{{app="{app}"}}' if app else r"(?:\{[^}]*\})?"
    return sum(float(v) for v in re.findall(rf"^{name}{label} ([0-9.e+]+)$", text, re.M))


def test_more_apps_than_fit_answer_correctly_on_every_worker(store, tmp_path):
    env = {"YYAI_MEMORY_BUDGET": "20M", "YYAI_LOAD_WAIT_SECONDS": "60", "YYAI_LOAD_WORKERS": "4"}
    with GunicornServer(store=store, data_dir=tmp_path / "data", workers=2, env=env) as server:
        states = {app: requests.get(server.url(f"/api/apps/{app}/"), timeout=10).json() for app in APPS}
        assert "STANDBY" in {s["state"] for s in states.values()}, "start-up filled the budget, the rest wait"
        assert states["app8"]["state"] == "AVAILABLE" and states["app8"]["memory"]["pinned"]

        picks = random.Random(0).choices(APPS, k=160)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda app: (app, predict(server, app)), picks))
        failed = [(app, r.status_code, r.text[:200]) for app, r in answers if r.status_code != 200]
        assert not failed, f"requests lost under the budget: {failed[:5]}"
        for app, response in answers:
            assert response.json()["predictions"][0][0]["value"] == pytest.approx(int(app[3:]) * 64.0, rel=1e-4)
        assert any("load;dur=" in r.headers.get("Server-Timing", "") for _, r in answers), "a request waited"

        text = requests.get(server.url("/metrics"), timeout=10).text
        assert metric(text, "yyai_app_evictions_total") > 0 and metric(text, "yyai_app_loads_on_demand_total") > 0
        assert metric(text, "yyai_memory_budget_bytes") == 20 * 2**20
        assert metric(text, "yyai_worker_memory_bytes") > 0

        # a reload while the app is on standby in some worker: converged, and every worker answers the new weights
        staged = modelkit.wide_regressor(tmp_path / "staged.h5", weight=10.0)
        shutil.copy(staged, store / "app1" / "m.h5")
        reloaded = requests.post(
            server.url("/api/apps/app1/reload/"), json={}, auth=("admin", ADMIN_PASSWORD), timeout=120
        )
        assert reloaded.status_code == 200 and reloaded.json()["converged"], reloaded.text
        for app in APPS[1:7]:  # traffic elsewhere unloads app1 again where it was loaded
            assert predict(server, app).status_code == 200
        for _ in range(12):  # fresh connections: both workers
            response = predict(server, "app1")
            assert response.status_code == 200 and response.json()["version"] == reloaded.json()["new_version"]
            assert response.json()["predictions"][0][0]["value"] == pytest.approx(640.0, rel=1e-4)

        fleet = requests.get(server.url("/api/apps/app2/"), timeout=10).json()["processes"]
        assert len(fleet) == 2 and all(p["rss_bytes"] > 0 and p["pss_bytes"] > 0 for p in fleet)
        assert all(p["version"] == fleet[0]["version"] for p in fleet), "standby workers count as serving it"
