"""Reload over HTTP: the operator's copy-then-reload workflow, failures, history, generation."""

import base64
import shutil

import pytest

from tests import modelkit
from tests.modelkit import png_bytes
from yyai.models import ModelApp, ReloadEvent

pytestmark = pytest.mark.django_db

IMAGE = {"image": base64.b64encode(png_bytes(255)).decode()}


def values(client, app="calc"):
    body = client.post(f"/api/apps/{app}/predict/", IMAGE, format="json").json()
    return body["version"], [r["value"] for r in body["result"]]


def test_copy_new_weights_then_reload_changes_predictions(store, client, staff_client, tmp_path):
    old_version, before = values(client)
    assert before == [64.0, 128.0]
    staged = modelkit.regressor(tmp_path / "new.h5", weight=0.5)
    shutil.copy(staged, store / "calc" / "a.h5")
    assert values(client) == (old_version, before), "nothing changes before the reload"
    response = staff_client.post("/api/apps/calc/reload/", format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["old_version"] == old_version and body["new_version"] != old_version
    assert body["load_ms"] > 0 and [m["name"] for m in body["models"]] == ["a.h5", "b.keras"]
    assert values(client) == (body["new_version"], [32.0, 128.0])
    app = ModelApp.objects.get(name="calc")
    assert app.generation == 1
    event = ReloadEvent.objects.get(app=app)
    assert (event.status, event.trigger, event.from_version, event.to_version) == (
        "ok",
        "api",
        old_version,
        body["new_version"],
    )
    assert event.user.username == "boss" and event.pid > 0 and event.host


def test_corrupt_weights_answer_error_and_keep_serving(store, client, staff_client):
    before = values(client)
    modelkit.truncate(store / "calc" / "a.h5")
    response = staff_client.post("/api/apps/calc/reload/", format="json")
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "model_load_failed" and "a.h5" in body["error"]
    assert values(client) == before
    detail = staff_client.get("/api/apps/calc/").json()
    assert detail["state"] == "AVAILABLE" and "a.h5" in detail["last_error"]
    assert str(store) not in detail["last_error"] and str(store) not in body["error"], "no absolute path"
    anonymous = client.get("/api/apps/calc/").json()
    assert anonymous["last_error"] == "failed; the reason is shown to staff"
    assert ModelApp.objects.get(name="calc").generation == 0, "a failed reload raises no generation"
    assert ReloadEvent.objects.get().status == "failed"


def test_new_app_folder_picked_up_by_reload(store, client, staff_client):
    modelkit.regressor(store / "fresh" / "m.keras", weight=3.0)
    assert client.post("/api/apps/fresh/predict/", IMAGE, format="json").status_code == 503
    assert staff_client.post("/api/apps/fresh/reload/").status_code == 200
    assert values(client, "fresh")[1] == [192.0]


def test_pin_and_unpin_numbered_versions(store, client, staff_client):
    for number, weight in ((1, 1.0), (2, 2.0)):
        modelkit.regressor(store / "nums" / str(number) / "m.h5", weight=weight)
        (store / "nums" / str(number) / "READY").touch()
    assert staff_client.post("/api/apps/nums/reload/").json()["new_version"] == "2"
    assert staff_client.post("/api/apps/nums/reload/", {"version": 1}, format="json").json()["new_version"] == "1"
    assert values(client, "nums") == ("1", [64.0])
    assert ModelApp.objects.get(name="nums").pinned_version == "1"
    assert (
        staff_client.post("/api/apps/nums/reload/", {"version": "latest"}, format="json").json()["new_version"] == "2"
    )
    response = staff_client.post("/api/apps/nums/reload/", {"version": 9}, format="json")
    assert (response.status_code, response.json()["code"]) == (404, "version_not_found")
    response = staff_client.post("/api/apps/nums/reload/", {"version": "x/../"}, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "invalid")


def test_seed_loadmodel_route(store, staff_client, client):
    assert client.post("/calc_loadmodel/").status_code in (401, 403)
    response = staff_client.post("/calc_loadmodel/")
    assert response.status_code == 200 and response.json()["app"] == "calc"


def test_reload_history_filterable(store, staff_client, client):
    staff_client.post("/api/apps/calc/reload/")
    staff_client.post("/api/apps/cls/reload/")
    assert client.get("/api/reloads/").status_code in (401, 403)
    rows = staff_client.get("/api/reloads/", {"app": "cls"}).json()["results"]
    assert [r["app"] for r in rows] == ["cls"] and rows[0]["user"] == "boss"
    assert staff_client.get("/api/reloads/", {"status": "failed"}).json()["count"] == 0
