"""X-Request-ID: a caller's id is echoed, a bad or missing one replaced, on every response."""

import multiprocessing
import re

import pytest

from yyai.http.request_context import request_id_of

pytestmark = pytest.mark.django_db
GENERATED = re.compile(r"[0-9a-f]{32}")


def test_a_valid_id_is_echoed(client, store):
    response = client.get("/api/apps/", HTTP_X_REQUEST_ID="trace-42.a:b/c=")
    assert response["X-Request-ID"] == "trace-42.a:b/c="


def test_a_missing_id_is_generated_and_unique(client, store):
    first, second = client.get("/healthz")["X-Request-ID"], client.get("/healthz")["X-Request-ID"]
    assert GENERATED.fullmatch(first) and GENERATED.fullmatch(second) and first != second


@pytest.mark.parametrize("bad", ["", "has space", "x" * 129, "nl\u00e9", "<script>"])
def test_an_invalid_id_is_replaced(client, store, bad):
    assert GENERATED.fullmatch(client.get("/healthz", HTTP_X_REQUEST_ID=bad)["X-Request-ID"])


def test_errors_and_early_refusals_carry_it_too(client, store, settings, yyai):
    assert client.get("/api/apps/nope/", HTTP_X_REQUEST_ID="r-404")["X-Request-ID"] == "r-404"
    assert client.get("/no/such/path", HTTP_X_REQUEST_ID="r-nf")["X-Request-ID"] == "r-nf"
    yyai.MAX_BODY_BYTES = 1024
    response = client.post(
        "/api/apps/calc/predict/", data=b"x" * 2048, content_type="application/octet-stream", HTTP_X_REQUEST_ID="r-413"
    )
    assert response.status_code == 413 and response["X-Request-ID"] == "r-413"


def _generated_in_child(queue) -> None:
    queue.put(request_id_of(""))


def test_forked_workers_generate_ids_of_their_own():
    """Workers are forked from one master: each must draw its own ids, not replay the master's sequence."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    children = [context.Process(target=_generated_in_child, args=(queue,)) for _ in range(3)]
    for child in children:
        child.start()
    ids = {queue.get(timeout=30) for _ in children} | {request_id_of("")}
    for child in children:
        child.join(30)
    assert len(ids) == 4 and all(GENERATED.fullmatch(one) for one in ids)
