"""Payload logging: sampled CloudEvents of requests and responses, to a file or an HTTP sink, redacted and
capped, never on the request's path."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from tests import modelkit
from yyai.runtime.errors import ManifestError
from yyai.runtime.manifest import load_manifest
from yyai.services import payloads

pytestmark = pytest.mark.django_db


def logged_store(store, table: str) -> None:
    """calc logs its payloads: ``table`` is the body of its [payload_log]."""
    manifest = store / "calc" / "app.toml"
    base = manifest.read_text().split("\n[payload_log]")[0]
    manifest.write_text(f"{base}\n[payload_log]\n{table}\n")
    from yyai.fleet.process_registry import get_registry

    get_registry().get("calc").reload()


@pytest.fixture
def clean_log(settings):
    path = Path(settings.DATA_DIR) / "payloads" / "calc.jsonl"
    path.unlink(missing_ok=True)
    yield path
    path.unlink(missing_ok=True)


def test_every_request_and_response_in_the_file_as_cloudevents(store, client, clean_log):
    logged_store(store, 'sample = 1.0\nredact = ["inputs.pixels"]')
    body = {"inputs": {"pixels": np.ones((1, 8, 8, 1)).tolist()}}
    response = client.post("/api/apps/calc/predict/", body, content_type="application/json")
    assert response.status_code == 200, response.content
    payloads.drain()
    request, answer = [json.loads(line) for line in clean_log.read_text().splitlines()]
    assert request["type"] == "org.kubeflow.serving.inference.request" and request["id"] == answer["id"]
    assert answer["type"] == "org.kubeflow.serving.inference.response" and request["app"] == "calc"
    assert request["version"] == response.json()["version"] and request["specversion"] == "1.0"
    assert request["data"] == {"inputs": {"pixels": "[redacted]"}}
    assert answer["data"] == {"a": [[64.0]], "b": [[128.0]]}  # each model's output, as the data plane named it


def test_images_are_logged_base64_and_big_bodies_cut_to_their_head(store, client, clean_log):
    logged_store(store, "sample = 1.0\nmax_bytes = 100")
    image = modelkit.png_bytes(255)
    response = client.post("/api/apps/calc/predict/", {"img": _upload(image)})
    assert response.status_code == 200
    payloads.drain()
    request, _ = [json.loads(line) for line in clean_log.read_text().splitlines()]
    assert request["data"]["truncated"] is True and request["data"]["bytes"] > 100
    assert len(request["data"]["head"].encode()) <= 100 and request["data"]["head"].startswith('{"images": ["')


def test_the_sample_picks_its_share_and_zero_logs_nothing(store, client, clean_log):
    logged_store(store, "sample = 0.0")
    for _ in range(5):
        client.post(
            "/api/apps/calc/predict/", {"instances": np.ones((1, 8, 8, 1)).tolist()}, content_type="application/json"
        )
    payloads.drain()
    assert not clean_log.exists()
    logged_store(store, "sample = 0.5")
    for _ in range(200):
        client.post(
            "/api/apps/calc/predict/", {"instances": np.ones((1, 8, 8, 1)).tolist()}, content_type="application/json"
        )
    payloads.drain()
    logged = len(clean_log.read_text().splitlines()) // 2
    assert 60 < logged < 140, logged  # 100 expected; 6 standard deviations wide


class Sink(BaseHTTPRequestHandler):
    received: list = []
    delay = 0.0

    def do_POST(self):
        time.sleep(self.delay)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Sink.received.append(({k.lower(): v for k, v in self.headers.items()}, json.loads(body)))
        self.send_response(202)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def sink():
    Sink.received, Sink.delay = [], 0.0
    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/events"
    server.shutdown()


def test_an_http_sink_gets_cloudevents_in_binary_mode(store, client, sink):
    logged_store(store, f'sink = "{sink}"')
    response = client.post(
        "/api/apps/calc/predict/", {"instances": np.ones((1, 8, 8, 1)).tolist()}, content_type="application/json"
    )
    assert response.status_code == 200
    payloads.drain()
    (request_headers, request), (answer_headers, answer) = Sink.received
    assert request_headers["ce-type"] == "org.kubeflow.serving.inference.request"
    assert answer_headers["ce-id"] == request_headers["ce-id"] and request_headers["ce-specversion"] == "1.0"
    assert request_headers["ce-inferenceservicename"] == "calc" and request_headers["ce-modelversion"]
    assert request == {"instances": np.ones((1, 8, 8, 1)).tolist()} and answer == {"a": [[64.0]], "b": [[128.0]]}


def test_a_slow_sink_adds_no_latency(store, client, sink):
    Sink.delay = 1.0
    logged_store(store, f'sink = "{sink}"')
    started = time.perf_counter()
    for _ in range(3):
        assert (
            client.post(
                "/api/apps/calc/predict/",
                {"instances": np.ones((1, 8, 8, 1)).tolist()},
                content_type="application/json",
            ).status_code
            == 200
        )
    assert time.perf_counter() - started < 2  # six events at 1 s each would take 6 s on the request path
    payloads.drain(15)
    assert len(Sink.received) == 6


def test_a_full_queue_drops_and_counts(store, client, monkeypatch):
    logged_store(store, "sample = 1.0")
    payloads.drain()
    dropped = payloads.EVENTS.labels(app="calc", outcome="dropped")._value.get()

    def full(item):
        raise payloads.queue.Full

    monkeypatch.setattr(payloads._queue, "put_nowait", full)
    assert (
        client.post(
            "/api/apps/calc/predict/", {"instances": np.ones((1, 8, 8, 1)).tolist()}, content_type="application/json"
        ).status_code
        == 200
    )
    assert payloads.EVENTS.labels(app="calc", outcome="dropped")._value.get() == dropped + 2


def test_an_unreachable_sink_is_counted_and_logged_not_raised(store, client, caplog):
    logged_store(store, 'sink = "http://127.0.0.1:9/nothing-listens"')
    payloads.drain()
    failed = payloads.EVENTS.labels(app="calc", outcome="failed")._value.get()
    assert (
        client.post(
            "/api/apps/calc/predict/", {"instances": np.ones((1, 8, 8, 1)).tolist()}, content_type="application/json"
        ).status_code
        == 200
    )
    payloads.drain()
    assert payloads.EVENTS.labels(app="calc", outcome="failed")._value.get() == failed + 2
    assert "could not be written to http://127.0.0.1:9/nothing-listens" in caplog.text


@pytest.mark.parametrize(
    "table, key",
    [
        ("sample = 2", "payload_log.sample"),
        ('sink = "ftp://x"', "payload_log.sink"),
        ("redact = [1]", "payload_log.redact"),
        ("max_bytes = 0", "payload_log.max_bytes"),
        ("level = 3", "payload_log.level"),
    ],
)
def test_a_bad_payload_log_table_is_refused_with_its_key(tmp_path, table, key):
    (tmp_path / "app.toml").write_text(f"[payload_log]\n{table}\n")
    with pytest.raises(ManifestError, match=key):
        load_manifest(tmp_path)


def _upload(data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("x.png", data, content_type="image/png")
