"""The HTTP protocol of every worker (aiserver/protocol.py): how an answer reaches the socket.

uvicorn's real protocol and response cycle are driven with request bytes over a transport that records each
write, as a socket would see them.
"""

import asyncio
import json

import pytest

from aiserver.direct import WithDirect
from tests.protocolkit import Connection, exchange, head_and_body
from yyai.http_errors import INTERNAL

GET = b"GET /x HTTP/1.1\r\nhost: t\r\n\r\n"
HEAD = b"HEAD /x HTTP/1.1\r\nhost: t\r\n\r\n"


def fixed(body: bytes, *, gap: bool = False):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
        if gap:
            await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": body})

    return app


@pytest.mark.parametrize("gap", [False, True])
def test_an_answer_of_known_length_is_one_write(gap):
    transport = exchange(fixed(b'{"ok":true}', gap=gap), GET)
    assert len(transport.writes) == 1
    head, body = head_and_body(transport.writes[0])
    assert head.startswith(b"HTTP/1.1 200 OK") and b"content-length: 11" in head
    assert body == b'{"ok":true}'


def test_answers_on_a_kept_alive_connection_are_one_write_each_in_order():
    transport = exchange(fixed(b"first"), GET, GET, GET)
    assert [head_and_body(write)[1] for write in transport.writes] == [b"first"] * 3
    assert not any(b"connection: close" in write for write in transport.writes)


def test_an_empty_body_still_sends_its_head():
    transport = exchange(fixed(b""), GET)
    assert len(transport.writes) == 1 and head_and_body(transport.writes[0])[1] == b""


def test_head_requests_get_their_head_although_no_body_is_written():
    transport = exchange(fixed(b"twelve bytes"), HEAD)
    assert len(transport.writes) == 1
    head, body = head_and_body(transport.writes[0])
    assert b"content-length: 12" in head and body == b""


def test_a_streamed_answer_is_written_as_it_comes():
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"one", "more_body": True})
        await send({"type": "http.response.body", "body": b"two"})

    writes = exchange(app, GET).writes
    assert len(writes) == 3 and b"transfer-encoding: chunked" in writes[0]
    assert writes[1:] == [b"3\r\none\r\n", b"3\r\ntwo\r\n0\r\n\r\n"]


def test_a_held_head_goes_out_before_the_connection_closes():
    async def app(scope, receive, send):  # starts an answer of known length, then fails
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
        raise RuntimeError("broken after the head")

    transport = exchange(app, GET)
    assert len(transport.writes) == 1 and transport.writes[0].startswith(b"HTTP/1.1 200 OK")
    assert transport.closed


def test_a_body_in_several_parts_joins_the_head_to_the_first():
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"6")]})
        await send({"type": "http.response.body", "body": b"abc", "more_body": True})
        await send({"type": "http.response.body", "body": b"def"})

    writes = exchange(app, GET).writes
    assert len(writes) == 2 and head_and_body(writes[0])[1] == b"abc" and writes[1] == b"def"


def test_100_continue_is_not_held():
    async def app(scope, receive, send):
        await receive()
        await fixed(b"done")(scope, receive, send)

    request = b"POST /x HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\nexpect: 100-continue\r\n\r\n"

    async def run():
        connection = Connection(app)
        continued = await connection.send(request)
        return continued, await connection.send(b"{}")

    continued, writes = asyncio.run(run())
    assert continued == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    assert len(writes) == 2 and head_and_body(writes[1])[1] == b"done"


# -- predicts the protocol answers itself (aiserver/direct.py) -----------------------------------------------------


class Direct:
    """A stand-in for aiserver.direct.DirectPredict: claims POST /p, answers with the body it got (or as told)."""

    def __init__(self, *, answer=True, fail=False, body_seconds=10.0):
        self.answered, self.given_back, self.body_seconds = [], [], body_seconds
        self.give_back, self.fail = not answer, fail

        async def fallback(scope, receive, send):
            message = await receive()
            self.given_back.append(message["body"])
            await fixed(b"fallback:" + message["body"])(scope, receive, send)

        self.fallback = fallback

    def claim(self, scope):
        return scope["path"] if scope["method"] == "POST" and scope["path"] == "/p" else None

    async def answer(self, claim, body, respond):
        if self.fail:
            raise RuntimeError("the fast path broke")
        if self.give_back:
            return False
        self.answered.append(body)
        await asyncio.sleep(0)  # as a batch is awaited
        await respond(200, [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))], body)
        return True


def served(direct: Direct, app=None):
    """An app naming ``direct``; ``app`` (default: one that fails the test) answers what is not claimed."""

    async def refuse(scope, receive, send):
        raise AssertionError(f"the ASGI app got {scope['method']} {scope['path']}")

    return WithDirect(app or refuse, direct)


def post(body: bytes, *, path=b"/p", headers=b"") -> bytes:
    return b"POST %s HTTP/1.1\r\nhost: t\r\ncontent-length: %d\r\n%s\r\n" % (path, len(body), headers) + body


def test_a_claimed_predict_is_answered_in_one_write_without_the_asgi_app():
    direct = Direct()
    transport = exchange(served(direct), post(b'{"a":1}'), post(b'{"b":2}'))
    assert direct.answered == [b'{"a":1}', b'{"b":2}']
    assert len(transport.writes) == 2 and not any(b"connection: close" in write for write in transport.writes)
    head, body = head_and_body(transport.writes[0])
    assert head.startswith(b"HTTP/1.1 200 OK") and b"content-length: 7" in head and body == b'{"a":1}'
    assert b"server: uvicorn" in head and b"date: " in head  # uvicorn's own headers, as its cycle writes them
    assert head_and_body(transport.writes[1])[1] == b'{"b":2}'


def test_what_is_not_claimed_goes_to_the_asgi_app():
    direct = Direct()
    transport = exchange(served(direct, fixed(b"asgi")), GET, post(b"{}", path=b"/other"))
    assert [head_and_body(write)[1] for write in transport.writes] == [b"asgi", b"asgi"] and direct.answered == []


def test_pipelined_predicts_are_answered_in_order():
    direct = Direct()
    transport = exchange(served(direct, fixed(b"asgi")), post(b"1") + GET + post(b"3"))
    assert [head_and_body(write)[1] for write in transport.writes] == [b"1", b"asgi", b"3"]


def test_a_body_in_pieces_is_answered_once_whole_and_100_continue_is_sent_at_once():
    direct = Direct()
    request = post(b"x" * 200_000, headers=b"expect: 100-continue\r\n")  # past uvicorn's 64 kB pause
    head, body = request[: request.index(b"\r\n\r\n") + 4], request[request.index(b"\r\n\r\n") + 4 :]

    async def run():
        connection = Connection(served(direct))
        continued = await connection.send(head)
        for start in range(0, len(body), 30_000):
            await connection.send(body[start : start + 30_000])
        return continued, connection

    continued, connection = asyncio.run(run())
    assert continued == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    assert direct.answered == [b"x" * 200_000] and len(connection.transport.writes) == 2


def test_a_body_later_than_its_deadline_is_a_408_and_the_connection_closes():
    direct = Direct(body_seconds=0.05)

    async def run():
        connection = Connection(served(direct))
        await connection.send(post(b"0123456789")[:-5])  # half the body, then nothing
        await asyncio.sleep(0.2)
        return connection.transport

    transport = asyncio.run(run())
    head, body = head_and_body(transport.writes[-1])
    assert head.startswith(b"HTTP/1.1 408 ") and b"connection: close" in head and transport.closed
    assert json.loads(body) == {"error": "the request body did not arrive within 0.05 s", "code": "request_timeout"}
    assert direct.answered == []


def test_a_predict_given_back_is_answered_by_the_fallback_with_its_body():
    direct = Direct(answer=False)
    transport = exchange(served(direct), post(b"not for me"))
    assert direct.given_back == [b"not for me"]
    assert head_and_body(transport.writes[0])[1] == b"fallback:not for me"


def test_a_failure_is_the_json_500_and_the_connection_closes(caplog):
    transport = exchange(served(Direct(fail=True)), post(b"{}"))
    head, body = head_and_body(transport.writes[0])
    assert head.startswith(b"HTTP/1.1 500 ") and b"connection: close" in head and transport.closed
    assert json.loads(body) == INTERNAL.body()
    assert "the fast path broke" in caplog.text


def test_a_client_gone_before_the_answer_gets_no_write():
    direct = Direct()

    async def run():
        connection = Connection(served(direct))
        connection.protocol.data_received(post(b"{}"))
        connection.protocol.connection_lost(None)  # before the answer's task has run
        for _ in range(20):
            await asyncio.sleep(0)
        return connection.transport

    assert asyncio.run(run()).writes == [] and direct.answered == [b"{}"]


def test_a_connection_not_kept_alive_says_so_and_closes_after_the_answer():
    transport = exchange(served(Direct()), post(b"{}", headers=b"connection: close\r\n"))
    head, _ = head_and_body(transport.writes[0])
    assert head.count(b"connection: close") == 1 and transport.closed


def test_the_access_log_line_is_uvicorns(capsys):
    async def run():
        await Connection(served(Direct()), access_log=True).send(post(b"{}"))

    asyncio.run(run())  # uvicorn's logging config writes its access lines to standard output
    assert '127.0.0.1:50000 - "POST /p HTTP/1.1" 200' in capsys.readouterr().out


def test_uvicorns_own_503_is_never_answered_directly():
    """Past uvicorn's concurrency limit its cycle runs a 503 app instead of the served one: that goes on."""
    direct = Direct()

    async def run():
        connection = Connection(served(direct))
        connection.protocol.limit_concurrency = 0
        return await connection.send(post(b"{}"))

    (write,) = asyncio.run(run())
    assert write.startswith(b"HTTP/1.1 503 ") and direct.answered == []
