"""Labels and canary traffic across real gunicorn workers: read-your-writes, as for reloads.

Two workers on SQLite. Once a label change answers, every request on a fresh connection (so on either
worker) sees it: the labelled version by label, the canary share at 100%, and nothing of it after a rollback.
"""

import numpy as np
import pytest
import requests

from tests import modelkit
from tests.liveserver import ADMIN_PASSWORD, GunicornServer

pytestmark = pytest.mark.slow

TENSOR = {"instances": np.ones((1, *modelkit.SHAPE)).tolist()}
AUTH = ("admin", ADMIN_PASSWORD)


def versions(server, query: str = "", count: int = 30) -> set[str]:
    seen = set()
    for _ in range(count):
        response = requests.post(server.url(f"/api/apps/num/predict/{query}"), json=TENSOR, timeout=30)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["predictions"][0][0]["value"] == 64.0 * int(body["version"])
        seen.add(body["version"])
    return seen


def post(server, path: str, body: dict | None = None) -> dict:
    response = requests.post(server.url(f"/api/apps/num/{path}"), json=body or {}, auth=AUTH, timeout=90)
    assert response.status_code == 200, response.text
    return response.json()


def test_label_changes_are_read_your_writes_on_every_worker(tmp_path):
    store = tmp_path / "store"
    for version in (1, 2):
        modelkit.regressor(store / "num" / str(version) / "m.h5", weight=float(version))
        (store / "num" / str(version) / "READY").touch()
    with GunicornServer(store=store, data_dir=tmp_path / "data", workers=2) as server:
        post(server, "reload/", {"version": 1})
        labelled = post(server, "labels/", {"labels": {"canary": "2"}, "canary_percent": 100})
        assert labelled["converged"] and len(labelled["processes"]) == 2
        assert all(p["also"] == ["2"] for p in labelled["processes"])
        assert versions(server) == {"2"}, "a 100% canary, on every worker at once"
        assert versions(server, "?label=canary") == {"2"} and versions(server, "?version=1") == {"1"}
        assert post(server, "canary/rollback/")["converged"]
        assert versions(server) == {"1"}
        missing = requests.post(server.url("/api/apps/num/predict/?label=canary"), json=TENSOR, timeout=30)
        assert missing.status_code == 404
