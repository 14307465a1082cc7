"""The web page, server side: what it lists, who sees what, the sample image route."""

import json

import pytest

pytestmark = pytest.mark.django_db


def page_data(response) -> dict:
    html = response.content.decode()
    start = html.index('<script id="page-data" type="application/json">') + len(
        '<script id="page-data" type="application/json">'
    )
    return json.loads(html[start : html.index("</script>", start)])


def test_lists_apps_with_state_version_and_models(client, store):
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    for text in ("calc", "cls", "AVAILABLE", "a.h5", "b.keras", "c.h5", "Demo weights", "sums"):
        assert text in html
    data = page_data(response)
    assert data["apps"]["calc"] == {
        "predict_url": "/api/apps/calc/predict/",
        "reload_url": "/api/apps/calc/reload/",
        "sample_url": "/samples/calc",
        "has_sample": True,
        "labels": None,
        "takes_images": True,
        "example": {"inputs": {"pixels": [[[[0.0]] * 8] * 8]}},  # one row of zeros, columnar
    }
    assert data["apps"]["cls"]["labels"] == ["x", "y", "z"]
    assert data["apps"]["cls"]["has_sample"] is False


def test_no_cdn_only_local_assets(client, store):
    html = client.get("/").content.decode()
    assert "http://" not in html and "https://" not in html
    assert "/static/yyai/app.js" in html and "/static/yyai/app.css" in html


def test_anonymous_sees_no_reload_controls(client, store):
    html = client.get("/").content.decode()
    assert "Reload history" not in html and 'class="reload"' not in html


def test_staff_sees_reload_button_and_history(client, store, staff):
    client.force_login(staff)
    assert client.post("/api/apps/calc/reload/", {}, format="json").status_code == 200
    html = client.get("/").content.decode()
    assert 'class="reload" data-app="calc"' in html
    assert "Reload history" in html and "boss" in html


def test_sample_image(client, store):
    response = client.get("/samples/calc")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content) == (store / "calc" / "sample.png").read_bytes()


@pytest.mark.parametrize("app, code", [("cls", "no_sample"), ("nope", "app_not_found")])
def test_sample_missing_is_json_404(client, store, app, code):
    response = client.get(f"/samples/{app}")
    assert response.status_code == 404 and response.json()["code"] == code
