"""yyai.http_errors: one meaning per failure, for every entry path, with no Django in sight."""

import subprocess
import sys
from pathlib import Path

import pytest

from yyai.http_errors import INTERNAL_ERROR, ApiError, Failure, failure_of
from yyai.runtime.errors import AppNotAvailable, AppNotFound, BadBase64, ModelLoadError, Overloaded


@pytest.mark.parametrize(
    "exc, status, code",
    [
        (BadBase64("x"), 400, "bad_base64"),
        (AppNotFound("x"), 404, "app_not_found"),
        (ModelLoadError("m.h5", "x"), 422, "model_load_failed"),
        (ApiError("x", code="path_outside_root", status=403), 403, "path_outside_root"),
    ],
)
def test_known_failures(exc, status, code):
    failure = failure_of(exc)
    assert (failure.status, failure.code, failure.headers) == (status, code, {})
    assert failure.body() == {"error": failure.message, "code": code}


def test_unavailable_and_overloaded_say_when_to_retry():
    assert failure_of(AppNotAvailable("x")).headers == {"Retry-After": "5"}
    overloaded = Overloaded("x")
    overloaded.retry_after = 2
    assert failure_of(overloaded) == Failure(503, "overloaded", "x", {"Retry-After": "2"})


def test_anything_else_is_a_bug_and_not_described():
    assert failure_of(KeyError("secret path")) is None
    assert "secret" not in INTERNAL_ERROR


def test_importing_it_loads_no_django():
    code = (
        "import sys, yyai.http_errors; print(any(m.split('.')[0] in ('django', 'rest_framework') for m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        timeout=120,
    )
    assert done.stdout.strip() == "False", done.stderr[-2000:]
