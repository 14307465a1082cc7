"""The ASGI front of every request (``aiserver/asgi.py``): probes, bodies with limits and deadlines, a last resort.

In front of the fast path and Django:

* ``/healthz`` and ``/readyz`` are answered here, on the event loop: no
  Django, no authentication, whatever the thread pool is doing;
* every request's body is read here before anything else sees it: its
  ``Content-Length`` checked against the route's limit (413), a chunked body
  counted as it comes, and the whole body due within the route's deadline
  (408: ``YYAI_BODY_TIMEOUT_SECONDS``, ``YYAI_UPLOAD_TIMEOUT_SECONDS`` for
  version uploads). Django's threads never wait on a slow client; bodies
  above a megabyte wait in a temporary file, not in memory;
* an exception that escapes the apps behind becomes the JSON 500 of the
  error format, when nothing was sent yet (the trace goes to the log).
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile

from yyai.conf import yyai_settings
from yyai.http import health
from yyai.http_errors import INTERNAL

log = logging.getLogger(__name__)

PROBES = {"/healthz": health.liveness, "/readyz": health.readiness}
UPLOAD_SUFFIX = "/versions/"  # version uploads: YYAI_MAX_UPLOAD_BYTES and YYAI_UPLOAD_TIMEOUT_SECONDS
IN_MEMORY_BYTES = 1 << 20  # a body larger than this waits in a temporary file
CHUNK = 1 << 16


class Refused(Exception):
    """A request refused before any app saw it: status, code and words of the error format."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Front:
    """ASGI: probes here; every body read whole, in bounds and in time, then replayed to ``app``."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        probe = PROBES.get(scope["path"])
        if probe is not None:
            return await self._probe(scope, send, probe)
        started = False

        async def tracked(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            body = await self._body(scope, receive)
            await self.app(scope, _replay(body, receive), tracked)
        except Refused as refused:
            await respond(send, refused.status, {"error": refused.message, "code": refused.code}, close=True)
        except Exception:  # the last resort: never a trace, never plain text
            log.exception("request %s %s failed", scope.get("method"), scope["path"])
            if not started:
                await respond(send, INTERNAL.status, INTERNAL.body(), close=True)

    async def _probe(self, scope: dict, send, probe) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            await respond(
                send,
                405,
                {"error": f"{scope['path']} only answers GET, HEAD", "code": "method_not_allowed"},
                headers=[(b"allow", b"GET, HEAD")],
            )
            return
        status, body = probe()
        await respond(send, status, body, head=scope["method"] == "HEAD")

    async def _body(self, scope: dict, receive):
        """The whole body (bytes, or a spooled file past IN_MEMORY_BYTES); Refused when too large or too slow."""
        upload = scope["path"].endswith(UPLOAD_SUFFIX)
        limit = yyai_settings.MAX_UPLOAD_BYTES if upload else yyai_settings.MAX_BODY_BYTES
        deadline = yyai_settings.UPLOAD_TIMEOUT_SECONDS if upload else yyai_settings.BODY_TIMEOUT_SECONDS
        length = _content_length(scope)
        if length is not None and length > limit:
            raise Refused(413, "payload_too_large", f"the request body is {length} bytes; the limit is {limit}")
        try:
            async with asyncio.timeout(deadline):  # no task per request, as wait_for would make
                return await _read(receive, limit)
        except TimeoutError:
            raise Refused(408, "request_timeout", f"the request body did not arrive within {deadline:g} s") from None


def _content_length(scope: dict) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                length = -1
            if length < 0:
                raise Refused(400, "bad_request", "Content-Length is not a number")
            return length
    return None


async def _read(receive, limit: int):
    chunks, size, spool = [], 0, None
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Refused(413, "payload_too_large", f"the request body is larger than the limit of {limit} bytes")
        if spool is None and size > IN_MEMORY_BYTES:
            spool = tempfile.TemporaryFile()
            spool.write(b"".join(chunks))
            chunks = []
        if spool is not None:
            spool.write(chunk)
        else:
            chunks.append(chunk)
        if not message.get("more_body"):
            break
    if spool is None:
        return b"".join(chunks)
    spool.seek(0)
    return spool


def _replay(body, receive):
    """A ``receive`` that hands over the body already read, then the connection's own events."""
    done = False

    async def replayed() -> dict:
        nonlocal done
        if done:
            return await receive()
        if isinstance(body, bytes):
            done = True
            return {"type": "http.request", "body": body, "more_body": False}
        chunk = body.read(CHUNK)
        more = len(chunk) == CHUNK
        if not more:
            done = True
            body.close()
        return {"type": "http.request", "body": chunk, "more_body": more}

    return replayed


async def respond(
    send, status: int, body: dict, *, headers: list | None = None, head: bool = False, close: bool = False
) -> None:
    """A JSON response (the body left out for HEAD); ``close`` ends the connection after it."""
    data = json.dumps(body).encode()
    extra = list(headers or []) + ([(b"connection", b"close")] if close else [])
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()), *extra],
        }
    )
    await send({"type": "http.response.body", "body": b"" if head else data})
