"""Operations under the real gunicorn configuration with two workers.

* /metrics sums every worker (Prometheus multiprocess mode), whichever worker answers the scrape;
* YYAI_LOG_JSON=1: every Python log line is JSON, one access line per request with its X-Request-ID;
* start-up load progress and the total are in the log.
"""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests import modelkit
from tests.liveserver import GunicornServer
from tests.modelkit import png_bytes

pytestmark = pytest.mark.slow
REQUESTS = 24


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(found: dict, name: str, **labels) -> float:
    """Sum of ``name`` over the series whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(value for (sample, got), value in found.items() if sample == name and wanted <= got)


@pytest.fixture
def server(tmp_path):
    store = tmp_path / "store"
    modelkit.regressor(store / "calc" / "a.h5", weight=1.0)
    modelkit.regressor(store / "calc" / "b.h5", weight=2.0)
    (store / "calc" / "app.toml").write_text('[input]\ncolor = "gray"\n')
    with GunicornServer(
        store=store, data_dir=tmp_path / "data", workers=2, env={"YYAI_LOG_JSON": "1", "GUNICORN_THREADS": "4"}
    ) as running:
        yield running


def test_metrics_logs_and_request_ids_across_two_workers(server):
    def predict(i: int) -> requests.Response:
        return requests.post(
            server.url("/api/apps/calc/predict/"),
            files={"image": ("x.png", png_bytes(255))},
            headers={"X-Request-ID": f"ops-{i}"},
            timeout=60,
        )

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(predict, range(REQUESTS)))
    assert [r.status_code for r in responses] == [200] * REQUESTS
    assert [r.headers["X-Request-ID"] for r in responses] == [f"ops-{i}" for i in range(REQUESTS)]

    for _ in range(4):  # new connections: scrapes land on either worker and must agree
        found = samples(requests.get(server.url("/metrics"), timeout=10).text)
        assert total(found, "yyai_requests_total", app="calc", route="app-predict", status="200") == REQUESTS
        assert total(found, "yyai_model_rows_total", app="calc", model="a.h5") == REQUESTS
        assert total(found, "yyai_batch_rows_total", app="calc") == REQUESTS
        assert 1 <= total(found, "yyai_batches_total", app="calc") <= REQUESTS
        assert total(found, "yyai_model_load_seconds_count", app="calc", model="b.h5") == 2  # once per worker
        assert total(found, "yyai_app_available", app="calc") == 1
        assert total(found, "yyai_queue_depth", app="calc") == 0

    server.stop()
    lines = server.log_path.read_text().splitlines()
    records = [json.loads(line) for line in lines if line.startswith("{")]
    python_lines = [line for line in lines if " INFO " in line or " WARNING " in line or "[INFO]" in line]
    assert python_lines == []  # every Python log line is JSON (TensorFlow's C++ start-up lines are not Python's)
    access = [r for r in records if r["logger"] == "yyai.access" and r.get("request_id", "").startswith("ops-")]
    assert sorted(r["request_id"] for r in access) == sorted(f"ops-{i}" for i in range(REQUESTS))
    assert all(r["status"] == 200 and r["app"] == "calc" and r["version"] for r in access)
    messages = [r["message"] for r in records]
    assert sum(m.startswith("loading 1 model apps") for m in messages) == 2
    assert sum(m.startswith("model store ready in") for m in messages) == 2
