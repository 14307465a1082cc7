"""App list and detail, filters, health probes."""

import pytest

from tests import modelkit
from yyai.models import ModelApp

pytestmark = pytest.mark.django_db


def test_list_apps(store, client):
    body = client.get("/api/apps/").json()
    assert body["count"] == 2
    calc = body["results"][0]
    assert calc["name"] == "calc" and calc["state"] == "AVAILABLE" and calc["description"] == "sums"
    assert [m["name"] for m in calc["models"]] == ["a.h5", "b.keras"]
    assert calc["models"][0]["inputs"] == [{"name": "pixels", "dtype": "float32", "shape": [None, 8, 8, 1]}]
    assert calc["models"][0]["outputs"] == [{"name": "y", "dtype": "float32", "shape": [None, 1]}]
    assert calc["models"][0]["params"] == 65 and calc["models"][0]["format"] == "keras"
    assert calc["predict_url"].endswith("/api/apps/calc/predict/")
    assert calc["reload_url"].endswith("/api/apps/calc/reload/")


def test_filters(store, client):
    assert [a["name"] for a in client.get("/api/apps/", {"name": "CL"}).json()["results"]] == ["cls"]
    assert [a["name"] for a in client.get("/api/apps/", {"state": "AVAILABLE"}).json()["results"]] == ["calc", "cls"]
    assert client.get("/api/apps/", {"state": "START"}).json()["results"] == []
    response = client.get("/api/apps/", {"state": "BOGUS"})
    assert response.status_code == 400 and response.json()["code"] == "invalid"


def test_an_app_copied_in_while_serving_is_listed_once_reloaded_and_reading_writes_nothing(store, client, staff_client):
    modelkit.regressor(store / "late" / "m.h5", weight=1.0)
    assert [a["name"] for a in client.get("/api/apps/").json()["results"]] == ["calc", "cls"]
    assert client.get("/api/apps/late/").status_code == 404
    assert not ModelApp.objects.filter(name="late").exists()  # a GET wrote no row
    assert staff_client.post("/api/apps/late/reload/", {}, format="json").status_code == 200
    listed = {a["name"]: a["state"] for a in client.get("/api/apps/").json()["results"]}
    assert listed == {"calc": "AVAILABLE", "cls": "AVAILABLE", "late": "AVAILABLE"}


def test_detail_lists_versions(store, client):
    body = client.get("/api/apps/calc/").json()
    assert body["versions"][0]["state"] == "AVAILABLE" and body["versions"][0]["files"] == ["a.h5", "b.keras"]
    assert body["generation"] == 0 and body["last_error"] is None


def test_browsable_api_renders(store, client):
    response = client.get("/api/apps/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200 and b"calc" in response.content


def test_health_and_readiness(store, client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    (store / "empty").mkdir()  # an empty folder (a refused upload's, an operator's mkdir) is not waited for
    assert client.get("/readyz").status_code == 200
    (store / "empty" / "app.toml").write_text("")  # declared by the operator: waited for
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["waiting_for"] == ["empty"]
    (store / "empty" / "app.toml").unlink()
    modelkit.random_bytes(store / "empty" / "m.h5")  # a model that never loaded: waited for
    assert client.get("/readyz").status_code == 503


def test_predict_is_browsable(store, client):
    response = client.get("/api/apps/calc/predict/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200 and b"<html" in response.content and b"a.h5" in response.content
    assert client.get("/api/apps/calc/predict/")["Content-Type"] == "application/json"
