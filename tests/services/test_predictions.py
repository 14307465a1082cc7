"""yyai.services.predictions without HTTP: the canonical answer, on the event loop's path too."""

import asyncio
import threading

import pytest

from tests.modelkit import png_bytes
from yyai.runtime.errors import InputError
from yyai.services import dataplane, predictions
from yyai.services.dataplane import InferRequest, Where

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

    result = asyncio.run(predictions.predict_async("calc", read, where=Where.LOOP))
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
        asyncio.run(predictions.predict_async("calc", read, where=Where.LOOP))
    except InputError:
        assert images[0][:4] in (b"not ", b"\x89PNG")  # what prepare says of them, from the pool
    assert read_on == [threading.current_thread().name] and prepared_on[0].startswith("cpu")


def test_predict_async_passes_the_readers_errors_through(store):
    def read():
        raise InputError("unreadable")

    with pytest.raises(InputError, match="unreadable"):
        asyncio.run(predictions.predict_async("calc", read))
    with pytest.raises(InputError, match="unreadable"):
        asyncio.run(predictions.predict_async("calc", read, where=Where.LOOP))


def test_small_requests_of_one_pass_of_the_loop_share_one_trip_to_the_pool(store, monkeypatch):
    prepared_on = _where_prepared(monkeypatch)
    read_on = []

    def reader(value, fail=False):
        def read():
            read_on.append((value, threading.current_thread().name))
            if fail:
                raise InputError("unreadable")
            return InferRequest(address="calc", images=[png_bytes(value)])

        return read

    async def together():
        calls = [predictions.predict_async("calc", reader(v, fail=v == 2), where=Where.SHARED) for v in (1, 2, 3)]
        return await asyncio.gather(*calls, return_exceptions=True)

    first, failed, third = asyncio.run(together())
    assert isinstance(failed, InputError)  # only the caller whose body it was
    alone = [asyncio.run(predictions.predict_async("calc", reader(v))) for v in (1, 3)]
    assert [first.rows, third.rows] == [answer.rows for answer in alone]
    shared = read_on[:3]
    assert [value for value, _ in shared] == [1, 2, 3]  # in the order they were made
    assert len({thread for _, thread in shared}) == 1 and shared[0][1].startswith("cpu")  # one trip, one thread
    assert prepared_on[:2] == [shared[0][1]] * 2
