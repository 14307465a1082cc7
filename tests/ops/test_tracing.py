"""OpenTelemetry traces (yyai/tracing.py), exported over OTLP/HTTP to a real receiver started here.

* On (``YYAI_TRACES=otlp`` under the real gunicorn configuration): a predict that carries a W3C ``traceparent``
  is a server span of that trace, child of the caller's span, with ``decode``, ``queue``, ``model`` and (fast
  path) ``encode`` children tagged with the app and version, and a ``batch`` span linked both ways; the Django
  path and gRPC (in-process) continue the trace too; an unsampled caller gets no spans.
* Off (the default, even with an OTLP endpoint in the environment): after predicts on both paths no span was
  exported and nothing of OpenTelemetry was imported.
"""

import base64
import json
import os
import secrets
import subprocess
import sys

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests import modelkit
from tests.liveserver import ROOT, GunicornServer
from tests.otlpkit import Receiver
from yyai import tracing
from yyai.compat.grpc_service import build_server

PREDICT = "/api/apps/calc/predict/"
CHILDREN = {"decode", "queue", "model"}


def traceparent(sampled: bool = True) -> tuple[str, str, str]:
    """(header value, trace id, parent span id) of a fresh caller span."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}", trace_id, span_id


def image_body() -> dict:
    return {"image": base64.b64encode(modelkit.png_bytes(255)).decode()}


def calc_store(root):
    modelkit.regressor(root / "calc" / "a.h5", weight=1.0)
    (root / "calc" / "app.toml").write_text('[input]\ncolor = "gray"\n')
    return root


@pytest.fixture(scope="module")
def receiver():
    with Receiver() as running:
        yield running


@pytest.fixture(scope="module")
def server(tmp_path_factory, receiver):
    tmp = tmp_path_factory.mktemp("tracing")
    env = {
        "YYAI_TRACES": "otlp",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.endpoint,
        "OTEL_SERVICE_NAME": "aiserver-test",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }
    with GunicornServer(store=calc_store(tmp / "store"), data_dir=tmp / "data", env=env) as running:
        yield running


def by_name(spans) -> dict:
    return {span.name: span for span in spans}


def check_request_trace(receiver, trace_id: str, parent: str, version: str, *, expect: set[str]):
    spans = receiver.wait(lambda got: expect | {"POST app-predict"} <= {s.name for s in got if s.trace_id == trace_id})
    found = by_name(s for s in spans if s.trace_id == trace_id)
    root = found["POST app-predict"]
    assert root.kind == "server" and root.parent_id == parent
    assert root.resource["service.name"] == "aiserver-test"
    assert root.attributes["http.response.status_code"] == 200 and root.attributes["http.request.method"] == "POST"
    assert root.attributes["url.path"] == PREDICT and root.attributes["yyai.route"] == "app-predict"
    assert (root.attributes["yyai.app"], root.attributes["yyai.version"]) == ("calc", version)
    for name in expect:
        child = found[name]
        assert child.parent_id == root.span_id, name
        assert (child.attributes["yyai.app"], child.attributes["yyai.version"]) == ("calc", version), name
        assert root.start_ns <= child.start_ns <= child.end_ns <= root.end_ns, name
    assert found["decode"].end_ns <= found["queue"].end_ns == found["model"].start_ns
    model = found["model"]
    assert model.attributes["yyai.batch.requests"] >= 1 and model.attributes["yyai.rows"] == 1
    (link,) = model.links  # the batch it ran in, a span of its own that links back to every request
    batch = next(s for s in receiver.spans if (s.trace_id, s.span_id) == link)
    assert batch.name == "batch" and batch.parent_id == "" and (trace_id, root.span_id) in batch.links
    assert batch.attributes["yyai.batch.rows"] >= 1 and batch.attributes["yyai.app"] == "calc"
    return found


@pytest.mark.slow
def test_a_fast_path_predict_continues_the_callers_trace(server, receiver):
    header, trace_id, parent = traceparent()
    response = requests.post(server.url(PREDICT), json=image_body(), headers={"traceparent": header}, timeout=30)
    assert response.status_code == 200, response.text
    found = check_request_trace(receiver, trace_id, parent, response.json()["version"], expect=CHILDREN | {"encode"})
    assert found["model"].end_ns <= found["encode"].start_ns


@pytest.mark.slow
def test_the_django_path_continues_it_too(server, receiver):
    header, trace_id, parent = traceparent()
    response = requests.post(  # a query string: the fast path hands the request to Django
        server.url(PREDICT + "?format=json"), json=image_body(), headers={"traceparent": header}, timeout=30
    )
    assert response.status_code == 200, response.text
    check_request_trace(receiver, trace_id, parent, response.json()["version"], expect=CHILDREN)
    header, trace_id, parent = traceparent()
    assert requests.get(server.url("/api/apps/calc/"), headers={"traceparent": header}, timeout=30).ok
    receiver.wait(lambda got: any(s.trace_id == trace_id for s in got))
    (span,) = receiver.trace(trace_id)
    assert span.kind == "server" and span.parent_id == parent and span.name == "GET app-detail"


@pytest.mark.slow
def test_no_traceparent_starts_a_trace_and_an_unsampled_one_records_nothing(server, receiver):
    unsampled, skipped, _ = traceparent(sampled=False)
    assert requests.post(server.url(PREDICT), json=image_body(), headers={"traceparent": unsampled}, timeout=30).ok
    response = requests.post(server.url(PREDICT), json=image_body(), headers={"X-Request-ID": "fresh-1"}, timeout=30)
    assert response.ok
    spans = receiver.wait(lambda got: any(s.attributes.get("yyai.request_id") == "fresh-1" for s in got))
    root = next(s for s in spans if s.attributes.get("yyai.request_id") == "fresh-1")
    assert root.parent_id == "" and {"decode", "queue", "model", "encode"} <= {
        s.name for s in receiver.trace(root.trace_id)
    }
    assert receiver.trace(skipped) == []


@pytest.mark.django_db
def test_a_grpc_predict_continues_the_trace_of_its_metadata(store, receiver):
    tracing.start(OTLPSpanExporter(endpoint=receiver.endpoint))
    server, port = build_server("127.0.0.1:0", workers=2)
    server.start()
    header, trace_id, parent = traceparent()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "calc"
            request.inputs["input"].CopyFrom(tf.make_tensor_proto(np.ones((1, *modelkit.SHAPE), np.float32)))
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            stub.Predict(request, 10.0, metadata=[("traceparent", header)])
            with pytest.raises(grpc.RpcError):
                stub.Predict(predict_pb2.PredictRequest(), 10.0, metadata=[("traceparent", header)])
        tracing.flush()
    finally:
        server.stop(0).wait()
        tracing.stop()
    spans = receiver.wait(lambda got: len([s for s in got if s.trace_id == trace_id and s.kind == "server"]) == 2)
    ok, failed = sorted((s for s in receiver.trace(trace_id) if s.kind == "server"), key=lambda s: s.start_ns)
    assert ok.name == "tensorflow.serving.PredictionService/Predict" and ok.parent_id == parent
    assert ok.attributes["rpc.grpc.status_code"] == 0 and ok.attributes["yyai.app"] == "calc"
    assert failed.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert failed.status == 2  # ERROR
    assert CHILDREN <= {s.name for s in spans if s.trace_id == trace_id and s.parent_id == ok.span_id}


OFF = """
import asyncio, json, os, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "aiserver.settings"
from aiserver import bootstrap
bootstrap.prepare()
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from aiserver.asgi import application
from yyai.lifecycle import startup
startup.start(watch=False)

def call(path, body):
    headers = [(b"host", b"localhost"), (b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode()),
               (b"traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]
    path, _, query = path.partition("?")
    scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(), "query_string": query.encode(),
             "scheme": "http", "http_version": "1.1", "root_path": "", "client": ("127.0.0.1", 5000),
             "server": ("localhost", 80), "headers": headers}
    messages, sent = [{"type": "http.request", "body": body, "more_body": False}], []
    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}
    async def send(message):
        sent.append(message)
    asyncio.run(application(scope, receive, send))
    return next(m["status"] for m in sent if m["type"] == "http.response.start")

from yyai import tracing
from yyai.runtime import batching
body = sys.argv[1].encode()
statuses = [call("/api/apps/calc/predict/", body), call("/api/apps/calc/predict/?format=json", body)]
print(json.dumps({"statuses": statuses, "on": tracing.ON, "observer": batching.observer is None,
                  "otel": sorted(name for name in sys.modules if name.startswith("opentelemetry"))}))
sys.stdout.flush()
os._exit(0)
"""


@pytest.mark.slow
def test_off_by_default_no_span_and_no_opentelemetry_import(tmp_path, receiver):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("YYAI_", "OTEL_"))}
    env.update(
        DJANGO_HTTPS="0",
        YYAI_DATA_DIR=str(tmp_path / "data"),
        YYAI_MODEL_STORE=str(calc_store(tmp_path / "store")),
        YYAI_SYNC_SECONDS="0",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.endpoint,  # an endpoint alone turns nothing on
    )
    posts = receiver.posts
    done = subprocess.run(
        [sys.executable, "-c", OFF, json.dumps(image_body())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"statuses": [200, 200], "on": False, "observer": True, "otel": []}
    assert receiver.posts == posts
