"""The HTTP protocol of every worker (aiserver/protocol.py): how an answer reaches the socket.

uvicorn's real protocol and response cycle are driven with request bytes over a transport that records each
write, as a socket would see them.
"""

import asyncio

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from aiserver.protocol import LimitedHttpToolsProtocol

GET = b"GET /x HTTP/1.1\r\nhost: t\r\n\r\n"
HEAD = b"HEAD /x HTTP/1.1\r\nhost: t\r\n\r\n"


class RecordingTransport(asyncio.Transport):
    """What a socket would be sent: each ``write`` apart, and whether the connection was closed."""

    def __init__(self):
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def get_extra_info(self, name, default=None):
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def write(self, data):
        self.writes.append(bytes(data))

    def close(self):
        self.closed = True

    def is_closing(self):
        return self.closed

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass


class Connection:
    """One connection of the real protocol serving ``app``, over a RecordingTransport."""

    def __init__(self, app):
        config = Config(app, http=LimitedHttpToolsProtocol, lifespan="off", access_log=False)
        config.load()
        self.protocol = LimitedHttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
        self.transport = RecordingTransport()
        self.protocol.connection_made(self.transport)

    async def send(self, data: bytes) -> list[bytes]:
        """Feed ``data``, let the ASGI task run its course; every write so far."""
        self.protocol.data_received(data)
        for _ in range(20):
            await asyncio.sleep(0)
        return list(self.transport.writes)


def exchange(app, *requests: bytes) -> RecordingTransport:
    """Feed ``requests`` to one connection served by ``app``; the transport once every answer is written."""

    async def run():
        connection = Connection(app)
        for request in requests:
            await connection.send(request)
        connection.protocol.connection_lost(None)
        return connection.transport

    return asyncio.run(run())


def fixed(body: bytes, *, gap: bool = False):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
        if gap:
            await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": body})

    return app


def head_and_body(write: bytes) -> tuple[bytes, bytes]:
    head, _, body = write.partition(b"\r\n\r\n")
    return head, body


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
