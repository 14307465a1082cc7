"""CLI: manage.py yyai_status (local or --url) and manage.py predict."""

import io
import json

import pytest
from django.core.management import CommandError, call_command


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_status_table_loads_the_store(store):
    (store / "broken").mkdir()
    (store / "broken" / "x.h5").write_bytes(b"not a model")
    lines = run("yyai_status").splitlines()
    assert lines[0].split() == ["APP", "STATE", "VERSION", "MODEL", "INPUTS", "OUTPUTS", "PARAMS", "LOAD", "MS"]
    rows = {tuple(line.split()[:4]) for line in lines[1:] if not line.startswith(" ")}
    assert {row[0] for row in rows} == {"broken", "calc", "cls"}
    assert ("broken", "FAILED", "-", "-") in rows
    assert {row[3] for row in rows if row[0] == "calc"} == {"a.h5", "b.keras"}
    assert any(line.split()[4:6] == ["pixels:float32[?,8,8,1]", "probs:float32[?,3]"] for line in lines)
    assert any(line.startswith("  last error:") for line in lines)


def test_status_asks_a_running_server(live_server, store):
    text = run("yyai_status", "--url", live_server.url)
    assert "calc" in text and "AVAILABLE" in text and "c.h5" in text


@pytest.mark.django_db
def test_status_reports_an_unreachable_server():
    with pytest.raises(CommandError, match="cannot read"):
        run("yyai_status", "--url", "http://127.0.0.1:9")


@pytest.mark.django_db
def test_predict_one_and_several_images(store):
    sample = str(store / "calc" / "sample.png")
    body = json.loads(run("predict", "calc", sample))
    assert [r["value"] for r in body["result"]] == [64.0, 128.0]  # 8x8 white pixels: 1.0 * 64 and 2.0 * 64
    assert len(json.loads(run("predict", "cls", sample, sample))["predictions"]) == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (("nope", "x.png"), "cannot read"),
        (("nope", __file__), "app_not_found"),
        (("calc", __file__), "not_an_image"),
    ],
)
@pytest.mark.django_db
def test_predict_errors(store, args, message):
    with pytest.raises(CommandError, match=message):
        run("predict", *args)
