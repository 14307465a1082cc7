"""/metrics in one process: request, model, batch, load and reload series move as they should."""

import pytest
from prometheus_client import REGISTRY

pytestmark = pytest.mark.django_db


def value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(client) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def test_predict_requests_rows_and_batches(client, store):
    scrape(client)
    version = client.get("/api/apps/calc/").json()["version"]
    requests = dict(name="yyai_requests_total", app="calc", version=version, route="app-predict", status="200")
    before = {
        "requests": value(**requests),
        "rows_a": value("yyai_model_rows_total", app="calc", model="a.h5", version=version),
        "rows_b": value("yyai_model_rows_total", app="calc", model="b.keras", version=version),
        "batch_rows": value("yyai_batch_rows_total", app="calc"),
        "batches": value("yyai_batches_total", app="calc"),
        "latency": value("yyai_request_duration_seconds_count", app="calc", route="app-predict"),
    }
    assert client.get("/api/apps/calc/predict/").status_code == 200
    assert client.get("/calc/").status_code == 200  # the seed route: same app, its own route label
    scrape(client)
    assert value(**requests) == before["requests"] + 1
    assert value("yyai_requests_total", app="calc", version=version, route="seed-predict", status="200") >= 1
    assert value("yyai_model_rows_total", app="calc", model="a.h5", version=version) == before["rows_a"] + 2
    assert value("yyai_model_rows_total", app="calc", model="b.keras", version=version) == before["rows_b"] + 2
    assert value("yyai_batch_rows_total", app="calc") == before["batch_rows"] + 2
    assert before["batches"] + 1 <= value("yyai_batches_total", app="calc") <= before["batches"] + 2
    assert value("yyai_request_duration_seconds_count", app="calc", route="app-predict") == before["latency"] + 1
    assert value("yyai_queue_depth", app="calc") == 0


def test_errors_are_counted_without_a_label_per_unknown_name(client, store):
    labels = dict(app="", version="", route="app-predict", status="404")
    before = value("yyai_requests_total", **labels)
    assert client.get("/api/apps/no-such-app/predict/").status_code == 404
    assert value("yyai_requests_total", **labels) == before + 1
    assert 'app="no-such-app"' not in scrape(client)
    before = value("yyai_requests_total", app="calc", version="", route="app-predict", status="400")
    assert client.post("/api/apps/calc/predict/", {}, format="json").status_code == 400
    assert value("yyai_requests_total", app="calc", version="", route="app-predict", status="400") == before + 1


def test_availability_and_load_times(client, store):
    text = scrape(client)
    assert 'yyai_app_available{app="calc"} 1.0' in text
    assert value("yyai_model_load_seconds_count", app="cls", model="c.h5") >= 1
    assert value("yyai_model_load_seconds_sum", app="cls", model="c.h5") > 0


def test_reloads_and_failures(staff_client, client, store):
    ok = dict(name="yyai_reloads_total", app="calc", trigger="api", status="ok")
    failed = dict(name="yyai_reloads_total", app="calc", trigger="api", status="failed")
    loads = dict(name="yyai_model_load_seconds_count", app="calc", model="a.h5")
    scrape(client)
    before = value(**ok), value(**failed), value(**loads)
    assert staff_client.post("/api/apps/calc/reload/", {}, format="json").status_code == 200
    assert staff_client.post("/api/apps/calc/reload/", {"version": 7}, format="json").status_code == 404
    scrape(client)
    assert (value(**ok), value(**failed)) == (before[0] + 1, before[1] + 1)
    assert value(**loads) == before[2] + 1  # the new version's load, seen once


def test_metrics_only_answers_get(client, store):
    response = client.post("/metrics")
    assert response.status_code == 405 and response.json()["code"] == "method_not_allowed"
