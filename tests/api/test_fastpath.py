"""The lean predict path (yyai/http/fastpath.py) answers exactly like Django and DRF, and only when it may.

Every request is sent through the real ASGI stack twice: the fast path in front
of Django (as gunicorn serves it), and Django alone (a2wsgi, the fast path off).
Status, JSON body (but the timing) and headers must match.
"""

import asyncio
import base64
import json
import logging
import threading

import pytest
from a2wsgi import WSGIMiddleware
from django.core.wsgi import get_wsgi_application

from tests.modelkit import png_bytes
from yyai import metrics, services
from yyai.fleet import process_registry
from yyai.http import django_mirror, fastpath
from yyai.lifecycle import startup
from yyai.runtime.errors import Overloaded

pytestmark = pytest.mark.django_db(transaction=True)

PATH = "/api/apps/calc/predict/"
VOLATILE = {"date", "server", "content-length", "x-request-id"}


def call(app, body: bytes = b"", *, path=PATH, method="POST", headers=None, scheme="http", query=b""):
    """Run one HTTP request through an ASGI app; (status, headers dict, body bytes)."""
    headers = {"host": "localhost", "content-type": "application/json", **(headers or {})}
    if body and "content-length" not in headers:
        headers["content-length"] = str(len(body))
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "scheme": scheme,
        "http_version": "1.1",
        "root_path": "",
        "client": ("127.0.0.1", 50000),
        "server": ("localhost", 80),
        "headers": [(k.encode(), v.encode()) for k, v in headers.items() if v is not None],
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    data = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, data


class Refuse:
    """A stand-in for Django that fails the test if the fast path hands it a request."""

    calls = 0

    async def __call__(self, scope, receive, send):
        Refuse.calls += 1
        await send({"type": "http.response.start", "status": 599, "headers": []})
        await send({"type": "http.response.body", "body": b"django"})


@pytest.fixture
def django_asgi():
    return WSGIMiddleware(get_wsgi_application(), workers=4)


@pytest.fixture
def both(store, django_asgi):
    """(fast path in front of Django, Django alone)."""
    fast = fastpath.FastPredict(django_asgi)
    assert fast.enabled
    slow = fastpath.FastPredict(django_asgi)
    slow.enabled = False
    return fast, slow


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def assert_same(fast, slow, body: bytes, **kwargs):
    f_status, f_headers, f_body = call(fast, body, **kwargs)
    s_status, s_headers, s_body = call(slow, body, **kwargs)
    f_json, s_json = json.loads(f_body), json.loads(s_body)
    for answer in (f_json, s_json):
        answer.pop("elapsed_ms", None)
    assert (f_status, f_json) == (s_status, s_json)
    assert {k: v for k, v in f_headers.items() if k not in VOLATILE} == {
        k: v for k, v in s_headers.items() if k not in VOLATILE
    }
    return f_status, f_json


GOOD = {
    "image": {"image": b64(png_bytes(255))},
    "images": {"images": [b64(png_bytes(255)), b64(png_bytes(0))]},
    "instances": {"instances": [[[[1.0]] * 8] * 8]},
}


@pytest.mark.parametrize("kind", sorted(GOOD))
def test_answers_match_django(both, kind):
    status, answer = assert_same(*both, json.dumps(GOOD[kind]).encode())
    assert status == 200
    assert answer["app"] == "calc"


BAD = {
    "bad base64": (b'{"image": "***"}', 400),
    "not an image": (json.dumps({"image": b64(b"hello")}).encode(), 415),
    "wrong tensor shape": (b'{"instances": [[1, 2, 3]]}', 400),
    "no input": (b'{"other": 1}', 400),
    "two inputs": (json.dumps({"image": b64(png_bytes()), "imgPath": "x.png"}).encode(), 400),
    "a list, not an object": (b"[1, 2]", 400),
    "malformed JSON (replayed to Django)": (b'{"image": ', 400),
    "NaN (replayed to Django)": (b'{"instances": [NaN]}', 400),
    "not UTF-8 (replayed to Django)": (b'{"image": "\xff"}', 400),
    "imgPath disabled": (b'{"imgPath": "a.png"}', 403),
    "too many images": (json.dumps({"images": [b64(png_bytes())] * 65}).encode(), 413),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_errors_match_django(both, case):
    body, expected = BAD[case]
    status, answer = assert_same(*both, body)
    assert status == expected
    assert set(answer) >= {"error", "code"}


BOUNDARY = "yyai-test-boundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def form(*parts: tuple[str, str | None, bytes]) -> bytes:
    """A multipart body of (field, filename or None, content) parts."""
    chunks = []
    for field, filename, content in parts:
        disposition = f'form-data; name="{field}"' + (f'; filename="{filename}"' if filename else "")
        chunks.append(f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n")
    return b"".join(chunks) + f"--{BOUNDARY}--\r\n".encode()


MULTIPART_CASES = {
    "img upload": (form(("img", "a.png", png_bytes(255))), 200),
    "image upload": (form(("image", "a.png", png_bytes(0))), 200),
    "base64 form field": (form(("image", None, b64(png_bytes(255)).encode())), 200),
    "two uploads": (form(("img", "a.png", png_bytes()), ("image", "b.png", png_bytes())), 400),
    "not an image": (form(("img", "a.png", b"plain text")), 415),
    "no input": (form(("other", None, b"1")), 400),
    "broken form (replayed to Django)": (b"--nope\r\ngarbage", 400),
}


@pytest.mark.parametrize("case", sorted(MULTIPART_CASES))
def test_multipart_answers_match_django(both, case):
    body, expected = MULTIPART_CASES[case]
    status, _ = assert_same(*both, body, headers={"content-type": MULTIPART})
    assert status == expected


def test_https_headers_match_django(store, settings):
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    django_asgi = WSGIMiddleware(get_wsgi_application())  # both read these settings at start-up
    fast, slow = fastpath.FastPredict(django_asgi), fastpath.FastPredict(django_asgi)
    slow.enabled = False
    body = json.dumps(GOOD["image"]).encode()
    assert_same(fast, slow, body, headers={"x-forwarded-proto": "https"})
    _, headers, _ = call(fast, body, headers={"x-forwarded-proto": "https"})
    assert headers["strict-transport-security"] == "max-age=3600; includeSubDomains"
    _, headers, _ = call(fast, body)
    assert "strict-transport-security" not in headers


@pytest.mark.parametrize(
    "content_type, body",
    [
        ("application/json; charset=utf-8", json.dumps(GOOD["image"]).encode()),
        (MULTIPART, form(("img", "a.png", png_bytes(255)))),
    ],
)
def test_answers_without_django(store, content_type, body):
    Refuse.calls = 0
    status, headers, body = call(
        fastpath.FastPredict(Refuse()),
        body,
        headers={"content-type": content_type, "accept": "application/json", "x-request-id": "trace-1"},
    )
    assert status == 200 and Refuse.calls == 0
    assert headers["x-request-id"] == "trace-1"
    assert json.loads(body)["result"][0]["value"] == 64.0


FALLS_THROUGH = {
    "browsable API": {"headers": {"accept": "text/html"}},
    "indented JSON": {"headers": {"accept": "application/json; indent=4"}},
    "CORS request": {"headers": {"origin": "https://example.com"}},
    "query string": {"query": b"format=json"},
    "form body": {"headers": {"content-type": "application/x-www-form-urlencoded"}},
    "no Content-Length": {"headers": {"content-length": None}},
    "body over the limit": {"headers": {"content-length": str(10**9)}},
    "unknown app": {"path": "/api/apps/nope/predict/"},
    "GET": {"method": "GET"},
    "host not allowed": {"headers": {"host": "evil.example"}},
    "other route": {"path": "/api/apps/calc/"},
}


@pytest.mark.parametrize("case", sorted(FALLS_THROUGH))
def test_hands_to_django_what_only_django_answers(store, case):
    Refuse.calls = 0
    status, _, _ = call(fastpath.FastPredict(Refuse()), json.dumps(GOOD["image"]).encode(), **FALLS_THROUGH[case])
    assert (status, Refuse.calls) == (599, 1)


def test_hosts_are_remembered_within_a_bound(settings):
    """The Host check is remembered per Host header, and a client sending many never grows that memory."""
    settings.ALLOWED_HOSTS = ["api.example", ".corp.example"]
    mirror = django_mirror.Mirror()
    for _ in range(2):
        assert mirror.host_allowed("api.example:8000") and mirror.host_allowed("a.corp.example")
        assert not mirror.host_allowed("evil.example") and not mirror.host_allowed("")
    for n in range(1000):
        assert mirror.host_allowed(f"h{n}.corp.example") and not mirror.host_allowed(f"h{n}.evil.example")
    assert len(mirror._hosts) <= django_mirror.HOSTS_KEPT
    assert mirror.host_allowed("api.example") and not mirror.host_allowed("evil.example")


def test_malformed_body_is_replayed_to_django_intact(store, django_asgi):
    status, _, body = call(fastpath.FastPredict(django_asgi), b'{"image": ')
    assert status == 400
    assert json.loads(body)["code"] == "malformed_body"


def test_an_app_without_a_serving_version_is_left_to_django(store, django_asgi):
    """Django answers, so a bad body is a 400 before the app's 503, as in DRF."""
    (store / "broken").mkdir()
    (store / "broken" / "m.h5").write_bytes(b"not a model")
    process_registry.reset()
    startup.start()
    Refuse.calls = 0
    assert call(fastpath.FastPredict(Refuse()), b"{}", path="/api/apps/broken/predict/")[0] == 599
    fast, slow = fastpath.FastPredict(django_asgi), fastpath.FastPredict(django_asgi)
    slow.enabled = False
    statuses = [
        assert_same(fast, slow, body, path="/api/apps/broken/predict/")[0]
        for body in (b'{"nothing": 1}', json.dumps(GOOD["image"]).encode())
    ]
    assert statuses == [400, 503]


@pytest.mark.parametrize(
    "setting, value",
    [
        ("FAST_PREDICT", False),
        ("PREDICT_PERMISSION", "authenticated"),
    ],
)
def test_off_when_the_answer_depends_on_django(store, yyai, setting, value):
    setattr(yyai, setting, value)
    assert not fastpath.FastPredict(Refuse()).enabled


def test_off_when_predict_is_throttled(store, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "predict": "5/minute"},
    }
    assert not fastpath.FastPredict(Refuse()).enabled


def test_on_with_the_project_settings(store):
    assert fastpath.FastPredict(Refuse()).enabled and django_mirror.drift() == []


def test_off_and_says_why_when_the_middleware_is_not_the_mirrored_one(store, settings, caplog):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.middleware.gzip.GZipMiddleware"]  # would compress answers
    assert not fastpath.FastPredict(Refuse()).enabled
    assert "MIDDLEWARE is not the mirrored list" in caplog.text
    Refuse.calls = 0
    assert call(fastpath.FastPredict(Refuse()), json.dumps(GOOD["image"]).encode())[0] == 599  # Django answers


def test_off_when_the_predict_route_moved(store, settings, caplog):
    settings.ROOT_URLCONF = "yyai.web.urls"  # no /api/apps/<app>/predict/ at all
    assert not fastpath.FastPredict(Refuse()).enabled
    assert "does not resolve to the app-predict view" in caplog.text


def test_off_for_plain_http_when_https_is_enforced(store, settings):
    settings.SECURE_SSL_REDIRECT = True
    Refuse.calls = 0
    fast = fastpath.FastPredict(Refuse())
    assert call(fast, json.dumps(GOOD["image"]).encode())[0] == 599
    assert call(fast, json.dumps(GOOD["image"]).encode(), scheme="https")[0] == 200


def test_overloaded_answers_503_with_retry_after(store, monkeypatch):
    async def overloaded(app, read, **_):
        raise Overloaded("calc: 256 requests are queued", retry_after=1)

    monkeypatch.setattr(services, "predict_async", overloaded)
    status, headers, body = call(fastpath.FastPredict(Refuse()), json.dumps(GOOD["image"]).encode())
    assert (status, headers["retry-after"], json.loads(body)["code"]) == (503, "1", "overloaded")


def test_a_bug_answers_500_without_a_trace_and_logs_it(store, monkeypatch, caplog):
    async def broken(app, read, **_):
        raise KeyError("secret internals")

    monkeypatch.setattr(services, "predict_async", broken)
    with caplog.at_level(logging.ERROR, logger="yyai.http.fastpath"):
        status, _, body = call(fastpath.FastPredict(Refuse()), json.dumps(GOOD["image"]).encode())
    assert status == 500
    assert b"secret" not in body and json.loads(body)["code"] == "internal_error"
    assert "secret internals" in caplog.text


def test_counted_under_the_drf_route_label(store):
    def count():
        return metrics.REQUESTS.labels("calc", store_version(), "app-predict", "200")._value.get()

    def store_version():
        from yyai.fleet.process_registry import get_registry

        return get_registry().get("calc").current.id

    before = count()
    call(fastpath.FastPredict(Refuse()), json.dumps(GOOD["image"]).encode())
    assert count() == before + 1


def test_concurrent_requests_share_batches_and_get_their_own_answers(store):
    """50 requests on one event loop: each gets its own image's answer, and they ran in shared batches."""
    from yyai.fleet.process_registry import get_registry

    fast = fastpath.FastPredict(Refuse())
    batcher = get_registry().get("calc").current.batcher
    batches_before = batcher.batches
    values = list(range(0, 250, 5))

    async def one(value):
        body = json.dumps({"image": b64(png_bytes(value))}).encode()
        sent, messages = [], [{"type": "http.request", "body": body, "more_body": False}]
        scope = {
            "type": "http",
            "method": "POST",
            "path": PATH,
            "query_string": b"",
            "scheme": "http",
            "client": ("127.0.0.1", 1),
            "headers": [
                (b"host", b"localhost"),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }

        async def receive():
            return messages.pop(0)

        async def send(message):
            sent.append(message)

        await fast(scope, receive, send)
        return json.loads(sent[1]["body"])

    async def main():
        return await asyncio.gather(*(one(v) for v in values))

    answers = asyncio.run(main())
    for value, answer in zip(values, answers):
        a, b = answer["result"]  # calc: a.h5 (weight 1) and b.keras (weight 2) on the sum of 64 pixels in [0, 1]
        assert a["value"] == pytest.approx(64 * value / 255, abs=2e-3)
        assert b["value"] == pytest.approx(128 * value / 255, abs=2e-3)
    assert batcher.batches - batches_before < len(values)


def test_a_small_body_is_read_on_the_event_loop_a_large_one_or_a_file_in_the_pool(store, monkeypatch, tmp_path, yyai):
    (tmp_path / "x.png").write_bytes(png_bytes(255))
    yyai.IMAGE_ROOT = tmp_path.resolve()
    threads, parse = [], fastpath.parse_predict_input

    def recorded(*args):
        threads.append(threading.current_thread().name)
        return parse(*args)

    monkeypatch.setattr(fastpath, "parse_predict_input", recorded)
    small = json.dumps(GOOD["image"]).encode()
    large = small[:-1] + b" " * fastpath.INLINE_BODY_BYTES + b"}"
    answers = [
        call(fastpath.FastPredict(Refuse()), body) for body in (small, large, json.dumps({"imgPath": "x.png"}).encode())
    ]
    assert [status for status, _, _ in answers] == [200, 200, 200]
    assert len({json.dumps(json.loads(body)["result"]) for _, _, body in answers}) == 1
    assert threads[0] == threading.current_thread().name  # the event loop's (call runs it in this thread)
    assert threads[1].startswith("cpu") and threads[2].startswith("cpu")
    busy = fastpath.FastPredict(Refuse())
    busy.in_flight = fastpath.INLINE_IN_FLIGHT  # as many others in flight: the body goes in a shared trip
    assert call(busy, small)[0] == 200 and threads[3].startswith("cpu")
    busy.in_flight = fastpath.INLINE_IN_FLIGHT - 1
    assert call(busy, small)[0] == 200 and threads[4] == threading.current_thread().name
    assert busy.in_flight == fastpath.INLINE_IN_FLIGHT - 1  # each answered request counted out again
