"""The real HTTP protocol of a worker (aiserver/protocol.py) driven in-process: request bytes in, the writes a
socket would see out."""

import asyncio

from uvicorn.config import Config
from uvicorn.server import ServerState

from aiserver.protocol import LimitedHttpToolsProtocol
from aiserver.workers import Worker


class RecordingTransport(asyncio.Transport):
    """What a socket would be sent: each ``write`` apart, and whether the connection was closed."""

    def __init__(self):
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = self.paused = False

    def get_extra_info(self, name, default=None):
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def write(self, data):
        self.writes.append(bytes(data))

    def close(self):
        self.closed = True

    def is_closing(self):
        return self.closed

    def pause_reading(self):
        self.paused = True

    def resume_reading(self):
        self.paused = False


class Connection:
    """One connection of the real protocol serving ``app``, over a RecordingTransport."""

    def __init__(self, app, *, access_log: bool = False):
        config = Config(app, **Worker.CONFIG_KWARGS, access_log=access_log)  # as the gunicorn worker has it
        config.load()
        state = ServerState()
        state.default_headers = [(b"date", b"Sun, 06 Dec 2026 09:00:00 GMT"), (b"server", b"uvicorn")]  # as uvicorn's
        self.protocol = LimitedHttpToolsProtocol(config=config, server_state=state, app_state={})
        self.transport = RecordingTransport()
        self.protocol.connection_made(self.transport)

    async def send(self, data: bytes) -> list[bytes]:
        """Feed ``data``, let the ASGI task run its course; every write so far."""
        assert not self.transport.paused, "reading is paused: a socket would deliver nothing more"
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


def head_and_body(write: bytes) -> tuple[bytes, bytes]:
    head, _, body = write.partition(b"\r\n\r\n")
    return head, body
