"""No route answers an error with anything but JSON: every URL pattern, every method, hostile bodies.

The HTML pages (the web page at ``/``, the admin, the browsable API's login and the Swagger UI) are
for browsers and are left out; their API calls are not.
"""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db

HTML_PAGES = re.compile(r"^(admin/|api-auth/|api/docs/|$)")
BODIES = [b"", b"{", b"[" * 5000 + b"]" * 5000, b'{"image": "***"}', b"\xff\xfe", b'{"instances": [[NaN]]}']
FILL = {"app": "calc", "name": "calc", "version": "1", "pk": "1", "format": "json"}


def fill(pattern: str) -> str:
    """A concrete path for a route pattern: named groups filled in (nested parentheses included), optional
    groups dropped, escapes undone."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("(?P<", i) or pattern.startswith("(?:", i):
            name = pattern[i + 4 : pattern.index(">", i)] if pattern.startswith("(?P<", i) else None
            depth, j = 0, i
            while True:
                depth += {"(": 1, ")": -1}.get(pattern[j], 0) if pattern[j - 1 : j] != "\\" else 0
                j += 1
                if depth == 0:
                    break
            optional = pattern[j : j + 1] == "?"
            out.append(FILL.get(name, "x") if name and not optional else "")
            i = j + (1 if optional else 0)
        else:
            out.append(pattern[i])
            i += 1
    text = "".join(out).lstrip("^").rstrip("$")
    text = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: FILL.get(m[1], "x"), text)
    return text.replace("\\", "").replace("/?", "/")


def routes(resolver=None, prefix=""):
    """Every concrete path of the URL configuration (parameters filled with an app of the test store)."""
    for pattern in (resolver or get_resolver()).url_patterns:
        text = prefix + fill(str(pattern.pattern))
        if isinstance(pattern, URLResolver):
            yield from routes(pattern, text)
        elif isinstance(pattern, URLPattern) and not HTML_PAGES.match(text):
            yield "/" + text


def test_the_route_list_is_complete():
    paths = set(routes())
    assert {
        "/api/apps/calc/predict/",
        "/v1/models/calc:predict",
        "/v2/models/calc/infer",
        "/calc_loadmodel/",
        "/healthz",
        "/metrics",
    } <= paths


@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete"])
def test_every_error_is_json(store, client, method):
    failures = []
    for path in sorted(set(routes())):
        for body in BODIES if method != "get" else [b""]:
            response = getattr(client, method)(path, data=body, content_type="application/json")
            kind = response.get("Content-Type", "")
            if response.status_code >= 400 and not kind.startswith("application/json"):
                failures.append((method, path, body[:10], response.status_code, kind))
    assert failures == []
