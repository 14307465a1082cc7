"""YYAI_LOG_JSON: one JSON line per request, and JSON records that carry the request id."""

import contextlib
import io
import json
import logging
import sys

import pytest

from yyai.logging_json import JsonFormatter, request_id

pytestmark = pytest.mark.django_db


@contextlib.contextmanager
def json_lines(name: str):
    """What logger ``name`` writes at INFO and above while inside, through the JSON formatter, parsed."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


@pytest.fixture
def access_lines(yyai):
    """What the yyai.access logger writes, through the JSON formatter."""
    with json_lines("yyai.access") as lines:
        yield lines


def test_one_json_line_per_request(client, store, settings, access_lines, yyai):
    yyai.LOG_JSON = True
    client.get("/api/apps/calc/predict/", HTTP_X_REQUEST_ID="req-1")
    client.get("/api/apps/nope/", HTTP_X_REQUEST_ID="req-2")
    first, second = access_lines()
    assert first["request_id"] == "req-1" and first["status"] == 200 and first["app"] == "calc"
    assert first["path"] == "/api/apps/calc/predict/" and first["method"] == "GET" and first["version"]
    assert first["duration_ms"] > 0 and first["logger"] == "yyai.access" and first["level"] == "INFO"
    assert second["request_id"] == "req-2" and second["status"] == 404 and second["app"] == ""


def test_no_access_line_when_off(client, store, settings, access_lines, yyai):
    yyai.LOG_JSON = False
    client.get("/healthz")
    assert access_lines() == []


def test_formatter_keeps_extras_request_id_and_exceptions():
    token = request_id.set("rid-7")
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            record = logging.getLogger("t").makeRecord(
                "t", logging.ERROR, __file__, 1, "failed %s", ("x",), exc_info=sys.exc_info(), extra={"app": "calc"}
            )
        line = JsonFormatter().format(record)
    finally:
        request_id.reset(token)
    body = json.loads(line)
    assert "\n" not in line
    assert body["message"] == "failed x" and body["request_id"] == "rid-7" and body["app"] == "calc"
    assert "ValueError: boom" in body["exception"]


def test_a_designed_503_is_logged_as_a_warning_without_a_trace(client, store, caplog):
    from yyai.fleet.process_registry import get_registry

    get_registry().get("calc").unload()  # the app has no version: 503 app_not_available, by design
    response = client.post("/api/apps/calc/predict/", {"instances": [[[[1.0]] * 8] * 8]}, format="json")
    assert response.status_code == 503 and response["Retry-After"]
    [record] = [r for r in caplog.records if r.name == "django.request"]
    assert record.levelname == "WARNING" and record.exc_info is None


def test_every_line_logged_while_a_request_holds_a_version_carries_it(store):
    """What the request's thread logs while it runs on a version (a handler's hook, a refusal) names both."""
    from yyai.services.addressing import parse_address, serving

    logger = logging.getLogger("yyai.test.inside")
    with json_lines(logger.name) as lines:
        with serving(parse_address("calc")) as version:
            logger.info("inside")
        logger.info("after")
        inside, after = lines()
    assert (inside["app"], inside["version"]) == ("calc", version.id)
    assert "version" not in after, "outside the request no version is claimed"
