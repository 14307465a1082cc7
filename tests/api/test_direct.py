"""Predicts the HTTP protocol answers itself (aiserver/direct.py) answer exactly as the ASGI stack does.

Each request goes over the worker's real protocol twice: to the application as gunicorn serves it (the fast path's
predicts answered by the protocol) and to the same ASGI stack with nothing answered directly. Status, JSON (but
the timing) and headers (but the date, the request id and the length) must match; the requests the fast path
gives back must reach Django through the fallback.
"""

import asyncio
import json

import pytest
from a2wsgi import WSGIMiddleware
from django.core.wsgi import get_wsgi_application

from aiserver.direct import DirectPredict, WithDirect
from aiserver.proxy import TrustedProxies, parse_networks
from tests.api.test_fastpath import BAD, GOOD, MULTIPART, MULTIPART_CASES
from tests.modelkit import png_bytes
from tests.protocolkit import Connection, head_and_body
from yyai.http.fastpath import FastPredict
from yyai.http.front import Front

pytestmark = pytest.mark.django_db(transaction=True)

VOLATILE = {"date", "x-request-id", "content-length"}  # the length follows elapsed_ms
PROXY = "127.0.0.1"  # the protocol kit's peer


class Counting(DirectPredict):
    """DirectPredict that counts the requests it answered and those it gave back."""

    answered = given_back = 0

    async def answer(self, claim, body, respond):
        answered = await super().answer(claim, body, respond)
        if answered:
            Counting.answered += 1
        else:
            Counting.given_back += 1
        return answered


def applications(networks=()):
    """(the application with direct predicts, the same stack without them)."""
    django = WSGIMiddleware(get_wsgi_application(), workers=4)
    fast = FastPredict(django)
    assert fast.enabled
    stack = TrustedProxies(Front(fast), networks)
    direct = Counting(fast, stack, TrustedProxies(Front(django), networks))
    Counting.answered = Counting.given_back = 0
    return WithDirect(stack, direct), WithDirect(stack, None)


def over_the_protocol(app, body: bytes, *, content_type="application/json", extra=b"") -> tuple[int, dict, dict]:
    request = (
        b"POST /api/apps/calc/predict/ HTTP/1.1\r\nhost: localhost\r\ncontent-type: %s\r\ncontent-length: %d\r\n%s\r\n"
        % (content_type.encode(), len(body), extra)
    ) + body

    async def run():
        connection = Connection(app)
        connection.protocol.data_received(request)
        for _ in range(2000):  # the batch runs in its thread, Django in its own
            await asyncio.sleep(0.005)
            if connection.protocol.cycle.response_complete:
                return connection.transport.writes
        raise TimeoutError("no whole answer in 10 s")

    head, data = head_and_body(b"".join(asyncio.run(run())))
    status = int(head.split(b" ", 2)[1])
    headers = dict(line.decode().lower().split(": ", 1) for line in head.split(b"\r\n")[1:])
    answer = json.loads(data)
    answer.pop("elapsed_ms", None)
    return status, answer, {name: value for name, value in headers.items() if name not in VOLATILE}


def assert_same(body: bytes, **kwargs) -> int:
    direct, stack = applications()
    answer = over_the_protocol(direct, body, **kwargs)
    assert answer == over_the_protocol(stack, body, **kwargs)
    return answer[0]


@pytest.mark.parametrize("kind", sorted(GOOD))
def test_predicts_are_answered_directly_as_the_stack_answers_them(store, kind):
    assert assert_same(json.dumps(GOOD[kind]).encode()) == 200
    assert (Counting.answered, Counting.given_back) == (1, 0)


@pytest.mark.parametrize("case", sorted(BAD))
def test_errors_are_answered_directly_or_by_the_fallback_as_the_stack_answers_them(store, case):
    body, expected = BAD[case]
    assert assert_same(body) == expected
    assert (Counting.answered, Counting.given_back) == ((0, 1) if "replayed to Django" in case else (1, 0))


@pytest.mark.parametrize("case", sorted(MULTIPART_CASES))
def test_uploads_are_answered_directly_as_the_stack_answers_them(store, case):
    body, expected = MULTIPART_CASES[case]
    assert assert_same(body, content_type=MULTIPART) == expected


def test_a_trusted_proxys_headers_are_applied_as_the_stack_applies_them(store, settings):
    settings.SECURE_HSTS_SECONDS = 3600  # sent on HTTPS answers only: the proxy's X-Forwarded-Proto decides
    direct, stack = applications(parse_networks([PROXY]))
    body = json.dumps(GOOD["image"]).encode()
    forwarded = b"x-forwarded-proto: https\r\nx-forwarded-for: 203.0.113.9\r\n"
    answer = over_the_protocol(direct, body, extra=forwarded)
    assert answer == over_the_protocol(stack, body, extra=forwarded)
    assert answer[2]["strict-transport-security"] == "max-age=3600"
    assert "strict-transport-security" not in over_the_protocol(direct, body)[2]
    assert Counting.answered == 2


def test_the_application_gunicorn_serves_names_its_direct_predicts(store):
    from aiserver.asgi import application

    async def protocol():
        return Connection(application).protocol

    assert isinstance(asyncio.run(protocol())._direct, DirectPredict)  # as uvicorn loads it in a worker
    status, answer, _ = over_the_protocol(application, json.dumps({"image": GOOD["image"]["image"]}).encode())
    assert status == 200 and answer["app"] == "calc"


def test_a_png_upload_is_answered_directly(store):
    direct, _ = applications()
    body = (
        b'--b\r\nContent-Disposition: form-data; name="img"; filename="a.png"\r\n\r\n' + png_bytes(9) + b"\r\n--b--\r\n"
    )
    status, answer, _ = over_the_protocol(direct, body, content_type="multipart/form-data; boundary=b")
    assert status == 200 and len(answer["result"]) == 2 and Counting.answered == 1
