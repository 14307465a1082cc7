"""uvicorn's httptools protocol with the limits it lacks: a deadline for headers, their size, connections.

* Headers must arrive whole within ``YYAI_HEADER_TIMEOUT_SECONDS`` of the
  connection (or of the first byte of the next request on a kept-alive one),
  else the answer is 408 and the connection is closed: a client that trickles
  its headers holds a socket for seconds, not forever.
* More than ``YYAI_MAX_HEADER_BYTES`` of request line and headers is 431.
* More than ``YYAI_MAX_CONNECTIONS`` open connections in one worker: the next is 503.
* A worker holding more than its share of the host's connections closes
  kept-alive ones after their answer (:mod:`aiserver.balance`).
* A response whose length is known goes out in one write, head and body
  together (:class:`HeadWithBody`), not uvicorn's two: one system call per
  answer fewer, on the event loop, holding the GIL.
* A predict the fast path takes is answered here, without the ASGI stack, once
  its body is in (``aiserver/direct.py``): the app served names them
  (:class:`aiserver.direct.WithDirect`).

Both answers are JSON in the error format. Bodies have their own deadline, in
the ASGI front (``yyai/http/front.py``), where the route is known.
"""

from __future__ import annotations

import json
import logging

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

from aiserver import balance
from aiserver.env import env_float, env_int
from yyai.http_errors import INTERNAL

log = logging.getLogger(__name__)

HEADER_TIMEOUT_SECONDS = env_float("YYAI_HEADER_TIMEOUT_SECONDS", 10.0)
MAX_HEADER_BYTES = env_int("YYAI_MAX_HEADER_BYTES", 64 * 1024, minimum=4096)
MAX_CONNECTIONS = env_int("YYAI_MAX_CONNECTIONS", 1000, minimum=1)


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that answers 408 to late headers and 431 to huge ones."""

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._direct = getattr(self.app, "direct", None)  # aiserver.direct.DirectPredict, when the app names one
        self._claimed = None  # (cycle, claim, deadline timer) of a direct predict whose body is still coming
        self._leaving = False
        balance.count(len(self.connections))
        self._header_bytes = 0
        self._refused = False
        self._header_timer = self.loop.call_later(HEADER_TIMEOUT_SECONDS, self._headers_late)
        if len(self.connections) > MAX_CONNECTIONS:
            self._refuse(
                503, "too_many_connections", f"this worker has {MAX_CONNECTIONS} connections open; retry shortly"
            )

    def connection_lost(self, exc) -> None:
        self._cancel_header_timer()
        self._unclaim()
        super().connection_lost(exc)
        if self._leaving:
            balance.leaving(len(self.connections), -1)
        else:
            balance.count(len(self.connections))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        if self._header_timer is None:  # the next request on a kept-alive connection
            self._header_timer = self.loop.call_later(HEADER_TIMEOUT_SECONDS, self._headers_late)

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._count(len(name) + len(value) + 4)

    def on_headers_complete(self) -> None:
        if self._refused:
            return  # answered already: no app runs
        self._cancel_header_timer()
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and not isinstance(cycle.transport, HeadWithBody):  # the request's new cycle
            cycle.transport = HeadWithBody(self.transport, cycle)
            if cycle.keep_alive and not self._leaving and balance.crowded(len(self.connections)):
                cycle.keep_alive = False  # "Connection: close": the client reconnects, to a less busy worker
                self._leaving = True
                balance.leaving(len(self.connections), 1)

    def data_received(self, data: bytes) -> None:
        if not self._refused:
            super().data_received(data)

    # -- predicts answered without ASGI (aiserver/direct.py) -------------------------------------------------
    def _start_asgi_task(self, cycle: RequestResponseCycle, app) -> None:
        """uvicorn starts every request's ASGI task here (pipelined ones once the one before is answered): a predict
        the fast path claims is answered directly instead, as soon as its body is in."""
        # not uvicorn's own 503 app (its concurrency limit)
        claim = self._direct.claim(cycle.scope) if self._direct is not None and app is self.app else None
        if claim is None:
            return super()._start_asgi_task(cycle, app)
        if not cycle.more_body:
            return self._answer_directly(cycle, claim)
        if cycle.waiting_for_100_continue:  # the client waits for it before it sends the body
            cycle.waiting_for_100_continue = False
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self._claimed = (cycle, claim, self.loop.call_later(self._direct.body_seconds, self._body_late))

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        if self._claimed is not None:
            self.flow.resume_reading()  # no ASGI receive() will: uvicorn pauses past 64 kB until one does

    def on_message_complete(self) -> None:
        super().on_message_complete()
        claimed = self._claimed
        if claimed is not None and claimed[0] is self.cycle:
            self._unclaim()
            self._answer_directly(claimed[0], claimed[1])

    def _unclaim(self) -> None:
        if self._claimed is not None:
            self._claimed[2].cancel()
            self._claimed = None

    def _body_late(self) -> None:
        """The claimed predict's body missed its deadline: 408, as the ASGI front answers it, and close."""
        cycle = self._claimed[0]
        self._claimed = None
        cycle.keep_alive = False
        seconds = self._direct.body_seconds
        self._write_json(
            cycle, 408, {"error": f"the request body did not arrive within {seconds:g} s", "code": "request_timeout"}
        )

    def _answer_directly(self, cycle: RequestResponseCycle, claim) -> None:
        task = self.loop.create_task(self._direct_answer(cycle, claim))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    async def _direct_answer(self, cycle: RequestResponseCycle, claim) -> None:
        """The fast path's answer, written here; a request it gives back goes to the ASGI stack without it (the body
        still in the cycle for its receive()); a failure is the ASGI front's last-resort 500."""

        async def respond(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
            self._write_answer(cycle, status, headers, body)

        try:
            answered = await self._direct.answer(claim, bytes(cycle.body), respond)
        except Exception:  # the last resort: never a trace, never plain text
            log.exception("request POST %s failed", cycle.scope["path"])
            if not cycle.response_started:
                cycle.keep_alive = False
                self._write_json(cycle, INTERNAL.status, INTERNAL.body())
            return
        if not answered and not cycle.disconnected:
            super()._start_asgi_task(cycle, self._direct.fallback)

    def _write_json(self, cycle: RequestResponseCycle, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self._write_answer(
            cycle, status, [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))], data
        )

    def _write_answer(self, cycle: RequestResponseCycle, status: int, headers: list, body: bytes) -> None:
        """One whole answer (``headers`` with its Content-Length) in one write, as uvicorn's cycle would send it (its
        default headers, its access log line, ``connection: close`` and closing when the connection is not kept
        alive), then uvicorn's end of response."""
        cycle.response_started = cycle.response_complete = True
        if cycle.disconnected:
            return
        if self.access_log:
            scope = cycle.scope
            self.access_logger.info(
                '%s - "%s %s HTTP/%s" %d',
                get_client_addr(scope),
                scope["method"],
                get_path_with_query_string(scope),
                scope["http_version"],
                status,
            )
        parts, closing = [STATUS_LINE[status]], False
        for name, value in (*self.server_state.default_headers, *headers):
            if name == b"connection" and b"close" in value.lower():
                cycle.keep_alive, closing = False, True
            parts += (name, b": ", value, b"\r\n")
        if not cycle.keep_alive and not closing:
            parts.append(b"connection: close\r\n")
        parts += (b"\r\n", body)
        self.transport.write(b"".join(parts))
        if not cycle.keep_alive:
            self.transport.close()
        cycle.on_response()

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > MAX_HEADER_BYTES and not self._refused:
            self._refuse(
                431, "headers_too_large", f"the request line and headers are larger than {MAX_HEADER_BYTES} bytes"
            )

    def _headers_late(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self._refuse(
                408, "request_timeout", f"the request headers did not arrive within {HEADER_TIMEOUT_SECONDS:g} s"
            )

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer in the error format and close, before any ASGI app saw the request."""
        self._refused = True
        self._cancel_header_timer()
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # a request is in flight on this connection: just close
            self.transport.close()
            return
        body = json.dumps({"error": message, "code": code}).encode()
        reason = {
            408: b"Request Timeout",
            431: b"Request Header Fields Too Large",
            503: b"Service Unavailable\r\nretry-after: 1",
        }[status]
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n" % (status, reason, len(body)) + body
        )
        self.transport.close()


class HeadWithBody:
    """The transport a request's response cycle writes through: the head of a response with a Content-Length
    (not to HEAD) is held back and written with the body's first write, in one ``write``. Every other write goes
    straight through; a held head goes out before the cycle closes the connection without a body.

    uvicorn writes the head as soon as the app sends ``http.response.start``; the answer is then two writes,
    two ``send`` system calls on the event loop (bench/NOTES.md, "Session 8")."""

    __slots__ = ("transport", "cycle", "head")

    def __init__(self, transport, cycle):
        self.transport, self.cycle = transport, cycle  # the cycle until its head is written (no lasting cycle)
        self.head: bytes | None = None  # a head held back for the body

    def write(self, data: bytes) -> None:
        cycle = self.cycle
        if cycle is not None and cycle.response_started:  # this is the head
            self.cycle = None
            if cycle.chunked_encoding is False and cycle.scope["method"] != "HEAD":
                self.head = data  # a Content-Length: a body write follows (uvicorn writes none for HEAD)
                return
        elif self.head:
            data, self.head = self.head + data, None
        self.transport.write(data)

    def close(self) -> None:
        if self.head:
            self.transport.write(self.head)
            self.head = None
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def __getattr__(self, name: str):
        return getattr(self.transport, name)
