"""The memory budget in the serving process: start-up, the watcher, heartbeats, the API, probes and metrics.

Each model measures exactly its file's size here (the resident set is made constant), so what fits is exact;
tests/runtime/test_budget.py covers the budget itself and tests/scaleout/test_memory_budget.py real gunicorn.
"""

import numpy as np
import pytest

from tests import modelkit
from yyai.fleet import heartbeats, process_registry
from yyai.lifecycle import startup
from yyai.lifecycle.watcher import GenerationWatcher
from yyai.models import Heartbeat, ModelApp
from yyai.runtime import loader
from yyai.runtime.snapshots import freeze

pytestmark = pytest.mark.django_db
TENSOR = {"instances": np.ones((1, *modelkit.SHAPE)).tolist()}  # sum(x) = 64


@pytest.fixture
def budget_store(tmp_path, yyai, monkeypatch):
    """Apps a, b, c (a regressor each, weights 1, 2, 3) under a budget that holds one of them."""
    monkeypatch.setattr(loader, "resident_bytes", lambda: 0)
    root = tmp_path / "model_store"
    for weight, app in enumerate("abc", start=1):
        modelkit.regressor(root / app / "m.h5", weight=float(weight))
    yyai.MODEL_STORE = root
    yyai.MEMORY_BUDGET = int(loader.model_size(root / "a" / "m.h5") * 1.5)
    process_registry.reset()
    startup.start(watch=False)
    yield root
    process_registry.reset()


def beat(app: str) -> Heartbeat:
    return Heartbeat.objects.get(app__name=app, process=heartbeats.beats().process)


def value(response) -> float:
    assert response.status_code == 200, response.content
    return response.json()["predictions"][0][0]["value"]


def test_start_up_loads_what_fits_and_the_rest_waits_on_standby(budget_store, client):
    registry = process_registry.get_registry()
    assert [u.state.value for u in registry.all()] == ["AVAILABLE", "STANDBY", "STANDBY"]
    assert ModelApp.objects.get(name="a").target_version == registry.get("a").current.id
    assert ModelApp.objects.get(name="b").target_version == "", "a version never loaded is nobody's target yet"
    assert (beat("a").resident, beat("b").resident) == (True, False)
    assert beat("a").memory_bytes > 0 and beat("b").memory_bytes == 0
    assert beat("b").version == registry.get("b").version_id, "standby: the version its next request loads"
    assert client.get("/readyz").status_code == 200, "an app on standby is ready: its next request loads it"
    detail = client.get("/api/apps/b/").json()
    assert detail["state"] == "STANDBY" and detail["memory"]["resident"] is False
    assert detail["processes"][0]["resident"] is False and detail["processes"][0]["rss_bytes"] > 0


def test_a_standby_app_answers_its_request_and_then_claims_its_target(budget_store, client):
    registry = process_registry.get_registry()
    response = client.post("/api/apps/b/predict/", TENSOR, format="json")
    assert value(response) == 128.0
    assert response["Server-Timing"].startswith("load;dur="), "the answer says it waited for a load"
    assert registry.get("a").state.value == "STANDBY", "a, idle, made room"
    assert "Server-Timing" not in client.post("/api/apps/b/predict/", TENSOR, format="json")
    watcher = GenerationWatcher(registry, sync_seconds=1)
    watcher.tick()
    assert ModelApp.objects.get(name="b").target_version == registry.get("b").current.id
    assert (beat("a").resident, beat("b").resident) == (False, True)
    metrics = client.get("/metrics").content.decode()
    assert 'yyai_app_evictions_total{app="a"} 1.0' in metrics
    assert 'yyai_app_loads_on_demand_total{app="b"} 1.0' in metrics
    assert 'yyai_app_resident{app="a"} 0.0' in metrics and 'yyai_app_resident{app="b"} 1.0' in metrics


def test_a_new_target_of_a_standby_app_is_what_its_next_request_loads(budget_store, client):
    registry = process_registry.get_registry()
    modelkit.regressor(budget_store / "c" / "m.h5", weight=9.0)
    target = freeze(budget_store / "c").id  # what a reload in another process froze and announced
    row = ModelApp.objects.get(name="c")
    row.generation, row.target_version = row.generation + 1, target
    row.save()
    watcher = GenerationWatcher(registry, sync_seconds=1)
    assert watcher.tick() == [], "nothing is loaded for a standby app"
    c = registry.get("c")
    assert c.current is None and c.version_id == target
    assert (beat("c").version, beat("c").generation, beat("c").resident) == (target, row.generation, False)
    modelkit.regressor(budget_store / "c" / "m.h5", weight=5.0)  # the folder changed again since: not served
    assert value(client.post("/api/apps/c/predict/", TENSOR, format="json")) == 9.0 * 64


def test_a_reload_of_a_standby_app_loads_it_here_and_converges(budget_store, staff_client):
    modelkit.regressor(budget_store / "c" / "m.h5", weight=4.0)
    response = staff_client.post("/api/apps/c/reload/", {}, format="json")
    assert response.status_code == 200 and response.json()["converged"], response.content
    assert value(staff_client.post("/api/apps/c/predict/", TENSOR, format="json")) == 256.0
    assert process_registry.get_registry().get("a").state.value == "STANDBY"
