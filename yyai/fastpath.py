"""The lean predict path: ``POST /api/apps/<app>/predict/`` (JSON or multipart), answered on the event loop.

An ASGI app in front of Django (``aiserver/asgi.py``). A predict request in its
common form skips Django's request/response cycle, its middleware and DRF
(what that saves is measured in bench/RESULTS.md). The body is parsed, checked
by the same :func:`yyai.api.inputs.parse_predict_input` and prepared for the
models in one trip to the CPU pool, the batch is awaited
(:func:`yyai.services.predict_async`), and the answer has the same JSON, error
format, headers, ``X-Request-ID``, metrics and access log line as the DRF view.

Everything else goes to Django unchanged, and so does any predict request
whose answer depends on something only Django does. Checked once at start-up
(:func:`enabled`): ``YYAI_FAST_PREDICT`` on, anyone may predict, no predict
throttle. Checked per request (:meth:`FastPredict._eligible`): an app with a
serving version, a JSON or multipart body with a Content-Length within the
limit, no query string, an Accept that picks JSON, no ``Origin`` (CORS), an
allowed Host, no pending HTTPS redirect. A body DRF's parsers would refuse
(not UTF-8 JSON, a broken multipart form) is replayed to Django, so DRF words
the parse error. ``tests/api/test_fastpath.py`` checks that both paths answer alike.
"""
from __future__ import annotations

import io
import json
import logging
import re
import time
from typing import Any, Awaitable, Callable, Mapping

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.files.uploadhandler import MemoryFileUploadHandler
from django.http.multipartparser import MultiPartParser, MultiPartParserError
from django.http.request import split_domain_port, validate_host

from yyai import bounded_json, services
from yyai.api.exceptions import known_failure
from yyai.api.inputs import parse_predict_input
from yyai.conf import yyai_settings
from yyai.http_errors import INTERNAL_ERROR, error_body
from yyai.logging_json import request_id
from yyai.process_registry import get_registry
from yyai.request_context import HEADER, finish_request, request_id_of
from yyai.runtime.errors import AppNotFound
from yyai.runtime.registry import APP_NAME_PATTERN

ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]

PREDICT_PATH = re.compile(rf"/api/apps/(?P<app>{APP_NAME_PATTERN})/predict/")
ROUTE = "app-predict"  # the DRF route's name, so both paths count under one metrics label
PARSED_TYPES = frozenset({"application/json", "multipart/form-data"})
JSON_ACCEPTS = frozenset({"*/*", "application/*", "application/json"})
DRF_HEADERS = ((b"allow", b"GET, POST, HEAD, OPTIONS"), (b"vary", b"Accept, origin"))
WANTED = frozenset({b"content-type", b"content-length", b"accept", b"origin", b"host", b"x-request-id",
                    b"x-forwarded-host"})

log = logging.getLogger(__name__)


def enabled() -> bool:
    """Whether predict may skip Django at all: the answer must not depend on the user or a throttle."""
    rates = settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {})
    return (yyai_settings.FAST_PREDICT and yyai_settings.PREDICT_PERMISSION == "any"
            and not rates.get("predict"))


class FastPredict:
    """ASGI: predict requests answered here, everything else passed to ``django`` (an ASGI app)."""

    def __init__(self, django: ASGIApp):
        self.django = django
        self.enabled = enabled()
        self.allowed_hosts = settings.ALLOWED_HOSTS or ([".localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else [])
        self.secure_headers = _security_headers(secure=True)
        self.plain_headers = _security_headers(secure=False)
        proxy = settings.SECURE_PROXY_SSL_HEADER  # Django's META name, e.g. HTTP_X_FORWARDED_PROTO
        self.proxy_header = (proxy[0].removeprefix("HTTP_").replace("_", "-").lower(), proxy[1]) if proxy else None
        self.wanted = WANTED | ({self.proxy_header[0].encode()} if self.proxy_header else set())

    async def __call__(self, scope: dict, receive, send) -> None:
        match = (PREDICT_PATH.fullmatch(scope["path"])
                 if self.enabled and scope["type"] == "http" and scope["method"] == "POST" else None)
        if match is None:
            return await self.django(scope, receive, send)
        headers = {name.decode(): value.decode("latin-1") for name, value in scope["headers"] if name in self.wanted}
        secure = self._is_secure(scope, headers)
        if not self._eligible(scope, match["app"], headers, secure):
            return await self.django(scope, receive, send)
        body = await _read_body(receive)
        if not await self._answer(scope, send, match["app"], _BodyReader(match["app"], body, headers["content-type"]),
                                  headers, secure):
            return await self.django(scope, _replay(body, receive), send)

    def _eligible(self, scope: dict, app: str, headers: dict[str, str], secure: bool) -> bool:
        """True when Django would answer this request exactly as :meth:`_answer` does."""
        try:
            length = int(headers.get("content-length", ""))
        except ValueError:
            return False  # chunked or malformed: Django's middleware answers
        return (0 < length <= yyai_settings.MAX_BODY_BYTES
                and not scope.get("query_string")  # ?format=api and friends are DRF's
                and _media_type(headers.get("content-type", "")) in PARSED_TYPES
                and _accepts_json(headers.get("accept", ""))
                and "origin" not in headers  # CORS: corsheaders answers
                and not (settings.USE_X_FORWARDED_HOST and "x-forwarded-host" in headers)
                and self._host_allowed(headers.get("host", ""))
                and not (settings.SECURE_SSL_REDIRECT and not secure)
                and _serving(app))

    async def _answer(self, scope: dict, send, app: str, reader: _BodyReader, headers: dict[str, str],
                      secure: bool) -> bool:
        """Answer the request; False, with nothing sent, when DRF's parsers would refuse the body."""
        started = time.perf_counter()
        rid = request_id_of(headers.get("x-request-id", ""))
        token = request_id.set(rid)
        version = ""
        try:
            try:
                result = await services.predict_async(app, reader)
                if result is None:
                    return False
                status, payload, extra = 200, result.to_body(many=reader.many), {}
                version = result.version
            except Exception as exc:  # noqa: BLE001 - every failure gets the error format, as in DRF
                status, payload, extra = _failure(exc)
            body = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
            response_headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *DRF_HEADERS,
                *(self.secure_headers if secure else self.plain_headers),
                *((name.lower().encode(), value.encode()) for name, value in extra.items()),
                (HEADER.lower().encode(), rid.encode()),
            ]
            await send({"type": "http.response.start", "status": status, "headers": response_headers})
            await send({"type": "http.response.body", "body": body})
            client = scope.get("client") or ("", 0)
            finish_request(method="POST", path=scope["path"], status=status, seconds=time.perf_counter() - started,
                           app=app, version=version, route=ROUTE, remote_addr=client[0])
            return True
        finally:
            request_id.reset(token)

    def _is_secure(self, scope: dict, headers: dict[str, str]) -> bool:
        """Django's ``request.is_secure()``: the trusted proxy header when configured and present, else the scheme."""
        if self.proxy_header and self.proxy_header[0] in headers:
            return headers[self.proxy_header[0]].split(",")[0].strip() == self.proxy_header[1]
        return scope.get("scheme") == "https"

    def _host_allowed(self, host: str) -> bool:
        domain, _ = split_domain_port(host)
        return bool(domain) and validate_host(domain, self.allowed_hosts)


def _failure(exc: Exception) -> tuple[int, dict, dict[str, str]]:
    """The error answer of ``exc``: the DRF exception handler's for known failures, else a logged 500."""
    failure = known_failure(exc)
    if failure is not None:
        return failure.status, failure.body(), failure.headers
    log.exception("predict failed")
    return 500, error_body(INTERNAL_ERROR, "internal_error"), {}


def _serving(app: str) -> bool:
    """A known app with a serving version (else Django answers the 404 or 503, after DRF's parse errors)."""
    try:
        return get_registry().get(app).current is not None
    except AppNotFound:
        return False


def _accepts_json(accept: str) -> bool:
    """DRF renders plain JSON for these Accept values; anything else goes to Django (text/html: the
    browsable API; parameters such as ``indent=4`` or ``q=`` change what DRF picks or how it renders)."""
    return not accept or all(part.strip().lower() in JSON_ACCEPTS for part in accept.split(","))


def _security_headers(*, secure: bool) -> list[tuple[bytes, bytes]]:
    """What SecurityMiddleware and XFrameOptionsMiddleware add to a JSON response, from the same settings."""
    headers = []
    if secure and settings.SECURE_HSTS_SECONDS:
        hsts = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            hsts += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            hsts += "; preload"
        headers.append(("strict-transport-security", hsts))
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append(("x-content-type-options", "nosniff"))
    if settings.SECURE_REFERRER_POLICY:
        policy = settings.SECURE_REFERRER_POLICY
        headers.append(("referrer-policy", ",".join(
            [v.strip() for v in policy.split(",")] if isinstance(policy, str) else policy)))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append(("cross-origin-opener-policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY))
    headers.append(("x-frame-options", settings.X_FRAME_OPTIONS))
    return [(name.encode(), value.encode()) for name, value in headers]


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


def _media_type(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


class _BodyReader:
    """Builds the predict request from the body, in the CPU pool (see services.infer_async).

    Returns None where DRF's parsers would refuse the body (Django then words the error); ``many``
    is set once read: whether the answer has one entry per row.
    """

    def __init__(self, app: str, body: bytes, content_type: str):
        self.app, self.body, self.content_type = app, body, content_type
        self.many = False

    def __call__(self) -> services.InferRequest | None:
        parsed = _parse_body(self.body, self.content_type)
        if parsed is None:
            return None
        given = parse_predict_input(*parsed)
        self.many = given.many
        return services.InferRequest(target=self.app, images=given.images, instances=given.instances,
                                     inputs=given.inputs)


def _parse_body(body: bytes, content_type: str) -> tuple[Any, Mapping] | None:
    """(data, files) as DRF's JSONParser or MultiPartParser reads them; None where DRF would refuse."""
    if _media_type(content_type) == "multipart/form-data":
        meta = {"CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(body))}
        try:
            return MultiPartParser(meta, io.BytesIO(body), [MemoryFileUploadHandler()], settings.DEFAULT_CHARSET).parse()
        except (MultiPartParserError, SuspiciousOperation, RequestDataTooBig, ValueError):  # DRF refuses these
            return None
    charset = re.search(r"charset=([\w-]+)", content_type, re.IGNORECASE)
    if charset and charset.group(1).lower().replace("_", "-") not in ("utf-8", "utf8"):
        return None
    try:
        return bounded_json.loads(body, max_depth=yyai_settings.MAX_JSON_DEPTH), {}
    except bounded_json.JSONError:
        return None


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
