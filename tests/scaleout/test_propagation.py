"""A reload reaches every worker process and every host, through the database generation."""
import shutil
import time

import numpy as np
import pytest
import requests

from tests import modelkit
from tests.liveserver import ADMIN_PASSWORD, GunicornServer

pytestmark = pytest.mark.slow

TENSOR = {"instances": np.ones((1, *modelkit.SHAPE)).tolist()}


def version_of(server) -> str:
    response = requests.post(server.url("/api/apps/calc/predict/"), json=TENSOR, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["version"]


def swap_weights_and_reload(store, tmp_path, server) -> str:
    staged = modelkit.regressor(tmp_path / "staged" / "m.h5", weight=2.0)
    shutil.copy(staged, store / "calc" / "m.h5")
    response = requests.post(server.url("/api/apps/calc/reload/"), auth=("admin", ADMIN_PASSWORD), timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["new_version"]


def seconds_until_streak(servers, version: str, streak: int = 100, limit: float = 10.0) -> float:
    """Seconds from now until the first of ``streak`` consecutive answers (round-robin) all give ``version``."""
    began = time.monotonic()
    run_start, run = None, 0
    i = 0
    while time.monotonic() - began < limit:
        got = version_of(servers[i % len(servers)])
        i += 1
        if got == version:
            run_start = run_start or time.monotonic()
            run += 1
            if run >= streak:
                return run_start - began
        else:
            run_start, run = None, 0
    raise AssertionError(f"no {streak} consecutive answers with version {version} within {limit}s")


def reload_events(server) -> list[dict]:
    response = requests.get(server.url("/api/reloads/"), auth=("admin", ADMIN_PASSWORD), timeout=10)
    return response.json()["results"]


def test_three_workers_all_reload(flat_store, tmp_path):
    with GunicornServer(store=flat_store, data_dir=tmp_path / "data", workers=3) as server:
        old = version_of(server)
        new = swap_weights_and_reload(flat_store, tmp_path, server)
        assert new != old
        lag = seconds_until_streak([server], new)
        assert lag <= 2.0, f"100 consecutive new-version answers began {lag:.2f}s after the reload"
        events = reload_events(server)
        assert sorted(e["trigger"] for e in events) == ["api", "sync", "sync"]
        assert len({e["pid"] for e in events}) == 3 and {e["status"] for e in events} == {"ok"}


def test_two_hosts_share_postgres(flat_store, tmp_path, postgres_url):
    a = GunicornServer(store=flat_store, data_dir=tmp_path / "a", database_url=postgres_url)
    b = GunicornServer(store=flat_store, data_dir=tmp_path / "b", database_url=postgres_url)
    with a, b:
        old = version_of(b)
        new = swap_weights_and_reload(flat_store, tmp_path, a)
        assert new != old
        lag = seconds_until_streak([b], new)
        assert lag <= 2.0, f"host B served the new version only {lag:.2f}s after the reload on A"
        assert sorted(e["trigger"] for e in reload_events(b)) == ["api", "sync"]
