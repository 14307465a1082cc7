"""yyai.services.dataplane without HTTP: what every protocol's codec relies on."""
import asyncio
import threading

import numpy as np
import pytest

from tests.modelkit import png_bytes
from yyai.runtime.errors import AppNotFound, InputError, VersionNotFound
from yyai.services import dataplane
from yyai.services.dataplane import InferRequest

pytestmark = pytest.mark.django_db


def test_predict_runs_every_model_on_one_version(store):
    result = dataplane.predict(app="calc", images=[png_bytes(255), png_bytes(0)])
    assert result.app == "calc" and len(result.rows) == 2
    assert [[m["name"] for m in row] for row in result.rows] == [["a.h5", "b.keras"]] * 2
    body = result.to_body(many=True)
    assert body["version"] == result.version and len(body["predictions"]) == 2
    assert "result" in result.to_body(many=False) and "predictions" not in result.to_body(many=False)


def test_infer_names_the_outputs_of_one_model(store):
    rows = np.ones((3, 8, 8, 1), np.float32)
    result = dataplane.infer(InferRequest(target="calc.b", inputs={"pixels": rows}))
    assert result.rows == 3 and list(result.tensors()) == ["y"]
    assert result.tensors()["y"].shape == (3, 1)


def test_targets_versions_and_inputs_are_checked(store):
    with pytest.raises(AppNotFound):
        dataplane.infer(InferRequest(target="nope", inputs=np.ones((1, 8, 8, 1), np.float32)))
    with pytest.raises(VersionNotFound):
        dataplane.infer(InferRequest(target="calc", inputs={"pixels": np.ones((1, 8, 8, 1))}, version=999))
    with pytest.raises(InputError):
        dataplane.infer(InferRequest(target="calc", inputs={"pixels": np.ones((1, 8, 8, 1)), "nope": [1]}))


def test_parse_target():
    assert dataplane.parse_target("calc") == dataplane.Target(name="calc", app="calc")
    assert dataplane.parse_target("calc.b.keras") == dataplane.Target(name="calc.b.keras", app="calc",
                                                                       model="b.keras")


def test_predict_async_reads_on_the_cpu_pool_and_none_means_not_handled(store):
    read_on = []

    def read():
        read_on.append(threading.current_thread().name)
        return InferRequest(target="calc", images=[png_bytes(255)])

    result = asyncio.run(dataplane.predict_async("calc", read))
    assert result.rows[0][0]["name"] == "a.h5"
    assert len(read_on) == 1 and read_on[0].startswith("cpu"), read_on  # the pool, never the event loop's thread
    assert asyncio.run(dataplane.predict_async("calc", lambda: None)) is None


def test_predict_async_passes_the_readers_errors_through(store):
    def read():
        raise InputError("unreadable")

    with pytest.raises(InputError, match="unreadable"):
        asyncio.run(dataplane.predict_async("calc", read))


def test_readiness_lists_every_app(store):
    assert dataplane.readiness() == {"calc": "AVAILABLE", "cls": "AVAILABLE"}
    assert dataplane.server_ready() and dataplane.model_ready(dataplane.parse_target("calc"))
