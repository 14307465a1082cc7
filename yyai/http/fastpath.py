"""The lean predict path: ``POST /api/apps/<app>/predict/`` (JSON or multipart), answered on the event loop.

An ASGI app in front of Django (``aiserver/asgi.py``). A predict request in its
common form skips Django's request/response cycle, its middleware and DRF
(what that saves is measured in bench/RESULTS.md). The body is parsed, checked
by the same :func:`yyai.api.inputs.parse_predict_input` and prepared for the
models in one trip to the CPU pool (on the event loop itself for a body of at
most INLINE_BODY_BYTES whose images are small, while fewer than INLINE_IN_FLIGHT
other predicts are in flight; past that, in a trip shared by the small bodies of
one pass of the loop), the batch is awaited
(:func:`yyai.services.predict_async`), and the answer has the same JSON, error
format, headers, ``X-Request-ID``, metrics and access log line as the DRF view.

This module decides which requests it may answer; what Django and DRF would
have done is mirrored in :mod:`yyai.http.django_mirror`. Checked once at start-up
(:func:`enabled`): ``YYAI_FAST_PREDICT`` on, anyone may predict, no predict
throttle, and the middleware and predict route still the mirrored ones.
Checked per request (:meth:`FastPredict._eligible`): an app with a serving
version (a standby app's load waits in Django's threads) and no handler, a JSON
or multipart body with a Content-Length within the limit, no
query string, an Accept that picks JSON, no ``Origin`` (CORS), an allowed Host,
no pending HTTPS redirect. A body DRF's parsers would refuse (not UTF-8 JSON, a
broken multipart form) is replayed to Django, so DRF words the parse error.
Everything else goes to Django unchanged. ``tests/api/test_fastpath.py`` checks
that both paths answer alike.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

from django.conf import settings

from yyai import services, tracing
from yyai.api.exceptions import known_failure
from yyai.api.inputs import parse_predict_input
from yyai.conf import yyai_settings
from yyai.fleet.process_registry import get_registry
from yyai.http import django_mirror
from yyai.http.request_context import HEADER, finish_request, request_id_of
from yyai.http_errors import INTERNAL, Failure
from yyai.logging_json import request_id
from yyai.runtime.budget import AppOnStandby
from yyai.runtime.errors import AppNotFound
from yyai.runtime.registry import APP_NAME_PATTERN

ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]

PREDICT_PATH = re.compile(rf"/api/apps/(?P<app>{APP_NAME_PATTERN})/predict/")
ROUTE = django_mirror.PREDICT_ROUTE  # so both paths count under one metrics label
WANTED = frozenset(
    {b"content-type", b"content-length", b"accept", b"origin", b"host", b"x-request-id", b"x-forwarded-host"}
)

# A body this small is parsed on the event loop, and read and prepared there when its images are small too
# (yyai.services.dataplane.INLINE_PIXELS): the trip to the CPU pool and back costs more (bench/NOTES.md, "Session 6").
INLINE_BODY_BYTES = 16 * 1024
# ... while fewer than this many other predicts are in flight in this worker. Under load the loop has other
# requests to serve while the pool decodes, and never waits to win the GIL back after a decode that let go of it
# (bench/NOTES.md, "Session 7"); the small bodies of one pass of the loop then share one trip ("Session 9").
INLINE_IN_FLIGHT = 8
_UNPARSED = object()

log = logging.getLogger(__name__)


def enabled() -> bool:
    """Whether predict may skip Django at all: the answer must not depend on the user or a throttle, and the
    stack must still be the one :mod:`yyai.http.django_mirror` copies (else this logs why and stays off)."""
    rates = settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {})
    if not (yyai_settings.FAST_PREDICT and yyai_settings.PREDICT_PERMISSION == "any" and not rates.get("predict")):
        return False
    drift = django_mirror.drift()
    if drift:
        log.warning("fast predict path off, Django answers every predict: %s", "; ".join(drift))
    return not drift


Respond = Callable[[int, list[tuple[bytes, bytes]], bytes], Awaitable[None]]  # status, headers, body: one answer


@dataclass(frozen=True, slots=True)
class Claim:
    """A predict request this path answers: its scope, app, the headers it reads (by lowercase name) and whether
    it came over HTTPS."""

    scope: dict
    app: str
    headers: dict[str, str]
    secure: bool


class FastPredict:
    """ASGI: predict requests answered here, everything else passed to ``django`` (an ASGI app).

    Two steps, which the HTTP protocol may also take without the ASGI stack (``aiserver/direct.py``):
    :meth:`claim` decides from the request line and headers, :meth:`answer` answers from the whole body."""

    def __init__(self, django: ASGIApp):
        self.django = django
        self.enabled = enabled()
        self.mirror = django_mirror.Mirror()
        self.in_flight = 0  # predicts being answered here now
        proxy = self.mirror.proxy_header
        self.wanted = (
            WANTED | ({proxy[0].encode()} if proxy else set()) | (tracing.HEADERS if tracing.configure() else set())
        )

    async def __call__(self, scope: dict, receive, send) -> None:
        claim = self.claim(scope) if scope["type"] == "http" else None
        if claim is None:
            return await self.django(scope, receive, send)
        body = await _read_body(receive)

        async def respond(status: int, headers: list[tuple[bytes, bytes]], data: bytes) -> None:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": data})

        if not await self.answer(claim, body, respond):
            return await self.django(scope, _replay(body, receive), send)

    def claim(self, scope: dict) -> Claim | None:
        """The request as this path answers it, or None: Django's (see :meth:`_eligible`)."""
        match = PREDICT_PATH.fullmatch(scope["path"]) if self.enabled and scope["method"] == "POST" else None
        if match is None:
            return None
        headers = {name.decode(): value.decode("latin-1") for name, value in scope["headers"] if name in self.wanted}
        secure = self.mirror.is_secure(scope, headers)
        if not self._eligible(scope, match["app"], headers, secure):
            return None
        return Claim(scope, match["app"], headers, secure)

    async def answer(self, claim: Claim, body: bytes, respond: Respond) -> bool:
        """Answer ``claim`` with its whole ``body`` through ``respond``; False, with nothing sent, when Django must
        answer it (DRF's parsers would refuse the body, or the app went on standby)."""
        reader = _BodyReader(claim.app, body, claim.headers["content-type"], inline=self.in_flight < INLINE_IN_FLIGHT)
        self.in_flight += 1
        try:
            if not tracing.ON:
                return await self._answer(claim, reader, respond)
            # The request's server span; a body given back to Django gets a second one, its middleware's.
            with tracing.http_server("POST", claim.scope["path"], claim.headers):
                return await self._answer(claim, reader, respond)
        finally:
            self.in_flight -= 1

    def _eligible(self, scope: dict, app: str, headers: dict[str, str], secure: bool) -> bool:
        """True when Django would answer this request exactly as :meth:`_answer` does."""
        try:
            length = int(headers.get("content-length", ""))
        except ValueError:
            return False  # chunked or malformed: Django's middleware answers
        return (
            0 < length <= yyai_settings.MAX_BODY_BYTES
            and not scope.get("query_string")  # ?format=api and friends are DRF's
            and django_mirror.media_type(headers.get("content-type", "")) in django_mirror.PARSED_TYPES
            and django_mirror.accepts_json(headers.get("accept", ""))
            and "origin" not in headers  # CORS: corsheaders answers
            and not (settings.USE_X_FORWARDED_HOST and "x-forwarded-host" in headers)
            and self.mirror.host_allowed(headers.get("host", ""))
            and not (settings.SECURE_SSL_REDIRECT and not secure)
            and _serving(app)
        )

    async def _answer(self, claim: Claim, reader: _BodyReader, respond: Respond) -> bool:
        """Answer the request; False, with nothing sent, when DRF's parsers would refuse the body."""
        started = time.perf_counter()
        app, scope = claim.app, claim.scope
        rid = request_id_of(claim.headers.get("x-request-id", ""))
        token = request_id.set(rid)
        version = ""
        try:
            try:
                result = await services.predict_async(app, reader, where=reader.where())
                if result is None:
                    return False
                status, payload, extra = 200, result.to_body(many=reader.many), {}
                version = result.version
            except AppOnStandby:  # unloaded under the memory budget since _eligible: its load has started
                return False  # Django waits for it, in a thread
            except Exception as exc:  # noqa: BLE001 - every failure gets the error format, as in DRF
                failure = _failure(exc)
                status, payload, extra = failure.status, failure.body(), failure.headers
            body = (
                _encode(payload)
                if not tracing.ON
                else tracing.call("encode", {"yyai.app": app, "yyai.version": version}, _encode, payload)
            )
            response_headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *self.mirror.response_headers(secure=claim.secure),
                *((name.lower().encode(), value.encode()) for name, value in extra.items()),
                (HEADER.lower().encode(), rid.encode()),
            ]
            await respond(status, response_headers, body)
            client = scope.get("client") or ("", 0)
            finish_request(
                method="POST",
                path=scope["path"],
                status=status,
                seconds=time.perf_counter() - started,
                app=app,
                version=version,
                route=ROUTE,
                remote_addr=client[0],
            )
            return True
        finally:
            request_id.reset(token)


def _encode(payload: dict) -> bytes:
    return json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _failure(exc: Exception) -> Failure:
    """The error answer of ``exc``: the DRF exception handler's for known failures, else a logged 500."""
    failure = known_failure(exc)
    if failure is None:
        log.exception("predict failed")
        return INTERNAL
    return failure


def _serving(app: str) -> bool:
    """A known app with a serving version, no handler and no canary share (else Django answers: the 404 or 503
    after DRF's parse errors; a handler's hooks in its thread pool, never on this event loop; the canary's
    split, which may read any header)."""
    try:
        current = get_registry().get(app).current
    except AppNotFound:
        return False
    return current is not None and current.handler is None and not get_registry().routes(app).canary_percent


async def _read_body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect: nothing more will come
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


class _BodyReader:
    """Builds the predict request from the body, in the CPU pool (see services.infer_async), or on the event
    loop for a small body (:meth:`where`).

    Returns None where DRF's parsers would refuse the body (Django then words the error); ``many``
    is set once read: whether the answer has one entry per row.
    """

    def __init__(self, app: str, body: bytes, content_type: str, *, inline: bool = True):
        self.app, self.body, self.content_type, self.inline = app, body, content_type, inline
        self.many = False
        self.parsed = _UNPARSED

    def where(self) -> services.Where:
        """Where the rest is read (:class:`yyai.services.Where`): a body of at most INLINE_BODY_BYTES is parsed now,
        on the event loop (microseconds), and read there too unless it names an ``imgPath`` (a file to read, in
        the pool); with ``inline`` off (the worker is busy) it goes to the pool in a trip shared with the other
        small bodies of this pass of the loop. A larger body takes a trip of its own."""
        if len(self.body) > INLINE_BODY_BYTES:
            return services.Where.POOL
        if not self.inline:
            return services.Where.SHARED
        self.parsed = django_mirror.parse_body(self.body, self.content_type)
        data = None if self.parsed is None else self.parsed[0]
        return services.Where.POOL if hasattr(data, "keys") and "imgPath" in data else services.Where.LOOP

    def __call__(self) -> services.InferRequest | None:
        parsed = django_mirror.parse_body(self.body, self.content_type) if self.parsed is _UNPARSED else self.parsed
        if parsed is None:
            return None
        given = parse_predict_input(*parsed)
        self.many = given.many
        return services.InferRequest(
            address=self.app, images=given.images, instances=given.instances, inputs=given.inputs
        )


def _replay(body: bytes, receive):
    """A ``receive`` for Django that hands over the body already read, then the connection's own events."""
    sent = False

    async def replayed() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
