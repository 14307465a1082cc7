"""What Django and DRF would do with a predict request, done without them, for the fast path (yyai/http/fastpath.py).

Each piece mirrors one part of the stack from the same settings: the security
headers (SecurityMiddleware, XFrameOptionsMiddleware), ``request.is_secure()``,
the Host check, DRF's content negotiation and its JSON and multipart parsers.
A mirror is only right while the stack is the one it copies: :func:`drift`
compares the middleware and the predict route with what is mirrored here, and
the fast path turns itself off when they differ.
"""

from __future__ import annotations

import io
import re
from typing import Any, Mapping

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.files.uploadhandler import MemoryFileUploadHandler
from django.http.multipartparser import MultiPartParser, MultiPartParserError
from django.http.request import split_domain_port, validate_host
from django.urls import Resolver404, resolve

from yyai import bounded_json
from yyai.conf import yyai_settings
from yyai.http import multipart
from yyai.http.remembered import Remembered

MIRRORED_MIDDLEWARE = (
    "yyai.http.request_context.RequestContextMiddleware",  # request id, metrics, access log: finish_request
    "django.middleware.security.SecurityMiddleware",  # security_headers, SECURE_SSL_REDIRECT
    "yyai.http.middleware.BodySizeLimitMiddleware",  # the Content-Length limit
    "yyai.http.middleware.DatabaseUnavailableMiddleware",  # a predict reads no database
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files only: never a predict
    "django.contrib.sessions.middleware.SessionMiddleware",  # no effect on an anonymous JSON answer
    "corsheaders.middleware.CorsMiddleware",  # requests with an Origin go to Django
    "django.middleware.common.CommonMiddleware",  # the path already ends with a slash
    "django.middleware.csrf.CsrfViewMiddleware",  # DRF views are exempt; no session is read
    "django.contrib.auth.middleware.AuthenticationMiddleware",  # anyone may predict (see fastpath.enabled)
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",  # security_headers
)
PREDICT_ROUTE = "app-predict"
PARSED_TYPES = frozenset({"application/json", "multipart/form-data"})  # the predict view's parsers
JSON_ACCEPTS = frozenset({"*/*", "application/*", "application/json"})
DRF_HEADERS = ((b"allow", b"GET, POST, HEAD, OPTIONS"), (b"vary", b"Accept, origin"))


def drift() -> list[str]:
    """How the stack differs from the one mirrored here (empty: the mirror holds)."""
    found = []
    if tuple(settings.MIDDLEWARE) != MIRRORED_MIDDLEWARE:
        found.append(f"MIDDLEWARE is not the mirrored list ({', '.join(MIRRORED_MIDDLEWARE)})")
    try:
        match = resolve("/api/apps/app/predict/")
    except Resolver404:
        match = None
    view = getattr(match, "func", None)
    actions = getattr(view, "actions", {})
    if match is None or match.url_name != PREDICT_ROUTE or actions.get("post") != "predict":
        found.append(f"/api/apps/<app>/predict/ does not resolve to the {PREDICT_ROUTE} view's predict action")
    else:
        parsers = {parser.media_type for parser in view.cls().get_parsers()}
        if not PARSED_TYPES <= parsers:
            found.append(f"the predict view no longer parses {', '.join(sorted(PARSED_TYPES - parsers))}")
    return found


HOSTS_KEPT = 64


class Mirror:
    """The settings-dependent parts, read once (the fast path builds one at start-up)."""

    def __init__(self):
        self.allowed_hosts = settings.ALLOWED_HOSTS or ([".localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else [])
        self.secure_headers = security_headers(secure=True)
        self.plain_headers = security_headers(secure=False)
        proxy = settings.SECURE_PROXY_SSL_HEADER  # Django's META name, e.g. HTTP_X_FORWARDED_PROTO
        self.proxy_header = (proxy[0].removeprefix("HTTP_").replace("_", "-").lower(), proxy[1]) if proxy else None
        self._hosts = Remembered(self._check_host, HOSTS_KEPT)  # Host header -> allowed

    def is_secure(self, scope: dict, headers: dict[str, str]) -> bool:
        """``request.is_secure()``: the trusted proxy header when configured and present, else the scheme."""
        if self.proxy_header and self.proxy_header[0] in headers:
            return headers[self.proxy_header[0]].split(",")[0].strip() == self.proxy_header[1]
        return scope.get("scheme") == "https"

    def host_allowed(self, host: str) -> bool:
        """``request.get_host()`` would not raise DisallowedHost (remembered per Host: clients send a few)."""
        return self._hosts(host)

    def _check_host(self, host: str) -> bool:
        domain, _ = split_domain_port(host)
        return bool(domain) and validate_host(domain, self.allowed_hosts)

    def response_headers(self, *, secure: bool) -> list[tuple[bytes, bytes]]:
        """DRF's and the middleware's headers of a JSON answer."""
        return [*DRF_HEADERS, *(self.secure_headers if secure else self.plain_headers)]


def security_headers(*, secure: bool) -> list[tuple[bytes, bytes]]:
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
        headers.append(
            ("referrer-policy", ",".join([v.strip() for v in policy.split(",")] if isinstance(policy, str) else policy))
        )
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append(("cross-origin-opener-policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY))
    headers.append(("x-frame-options", settings.X_FRAME_OPTIONS))
    return [(name.encode(), value.encode()) for name, value in headers]


def accepts_json(accept: str) -> bool:
    """DRF renders plain JSON for these Accept values; anything else goes to Django (text/html: the
    browsable API; parameters such as ``indent=4`` or ``q=`` change what DRF picks or how it renders)."""
    return not accept or all(part.strip().lower() in JSON_ACCEPTS for part in accept.split(","))


def media_type(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def parse_body(body: bytes, content_type: str) -> tuple[Any, Mapping] | None:
    """(data, files) as DRF's JSONParser or MultiPartParser reads them; None where DRF would refuse."""
    if media_type(content_type) == "multipart/form-data":
        plain = multipart.parse(body, content_type, settings.DEFAULT_CHARSET)
        if plain is not None:
            return plain
        meta = {"CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(body))}
        try:
            return MultiPartParser(
                meta, io.BytesIO(body), [MemoryFileUploadHandler()], settings.DEFAULT_CHARSET
            ).parse()
        except (MultiPartParserError, SuspiciousOperation, RequestDataTooBig, ValueError):  # DRF refuses these
            return None
    charset = re.search(r"charset=([\w-]+)", content_type, re.IGNORECASE)
    if charset and charset.group(1).lower().replace("_", "-") not in ("utf-8", "utf8"):
        return None
    try:
        return bounded_json.loads(body, max_depth=yyai_settings.MAX_JSON_DEPTH), {}
    except bounded_json.JSONError:
        return None
