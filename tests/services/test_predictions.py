"""yyai.services.predictions without HTTP: the canonical answer, on the event loop's path too."""

import asyncio
import threading

import pytest

from tests.modelkit import png_bytes
from yyai.runtime.errors import InputError
from yyai.services import dataplane, predictions
from yyai.services.dataplane import InferRequest

pytestmark = pytest.mark.django_db


def test_predict_runs_every_model_on_one_version(store):
    result = predictions.predict(app="calc", images=[png_bytes(255), png_bytes(0)])
    assert result.app == "calc" and len(result.rows) == 2
    assert [[m["name"] for m in row] for row in result.rows] == [["a.h5", "b.keras"]] * 2
    body = result.to_body(many=True)
    assert body["version"] == result.version and len(body["predictions"]) == 2
    assert "result" in result.to_body(many=False) and "predictions" not in result.to_body(many=False)


def test_predict_async_reads_on_the_cpu_pool_and_none_means_not_handled(store):
    read_on = []

    def read():
        read_on.append(threading.current_thread().name)
        return InferRequest(address="calc", images=[png_bytes(255)])

    result = asyncio.run(predictions.predict_async("calc", read))
    assert result.rows[0][0]["name"] == "a.h5"
    assert len(read_on) == 1 and read_on[0].startswith("cpu"), read_on  # the pool, never the event loop's thread
    assert asyncio.run(predictions.predict_async("calc", lambda: None)) is None


def _where_prepared(monkeypatch) -> list[str]:
    """The threads dataplane.prepare runs in, from now on."""
    threads, prepare = [], dataplane.prepare

    def recorded(*args):
        threads.append(threading.current_thread().name)
        return prepare(*args)

    monkeypatch.setattr(dataplane, "prepare", recorded)
    return threads


def test_a_small_request_is_read_and_prepared_on_the_loop(store, monkeypatch):
    read_on, prepared_on = [], _where_prepared(monkeypatch)

    def read():
        read_on.append(threading.current_thread().name)
        return InferRequest(address="calc", images=[png_bytes(255, size=(128, 128))])

    result = asyncio.run(predictions.predict_async("calc", read, small=True))
    assert result.rows == asyncio.run(predictions.predict_async("calc", read)).rows
    assert read_on[0] == prepared_on[0] == threading.current_thread().name  # the loop's own thread
    assert read_on[1].startswith("cpu") and prepared_on[1].startswith("cpu")


@pytest.mark.parametrize(
    "images",
    [
        [png_bytes(255, size=(129, 128))],
        [png_bytes(255, size=(100, 100))] * 2,
        [b"not an image"],
        [b"\x89PNG\r\n\x1a\n"],
    ],
    ids=["one-too-many-pixels", "too-many-together", "unknown-format", "broken-header"],
)
def test_a_small_request_with_larger_images_is_prepared_in_the_pool(store, monkeypatch, images):
    read_on, prepared_on = [], _where_prepared(monkeypatch)

    def read():
        read_on.append(threading.current_thread().name)
        return InferRequest(address="calc", images=images)

    try:
        asyncio.run(predictions.predict_async("calc", read, small=True))
    except InputError:
        assert images[0][:4] in (b"not ", b"\x89PNG")  # what prepare says of them, from the pool
    assert read_on == [threading.current_thread().name] and prepared_on[0].startswith("cpu")


def test_predict_async_passes_the_readers_errors_through(store):
    def read():
        raise InputError("unreadable")

    with pytest.raises(InputError, match="unreadable"):
        asyncio.run(predictions.predict_async("calc", read))
    with pytest.raises(InputError, match="unreadable"):
        asyncio.run(predictions.predict_async("calc", read, small=True))
