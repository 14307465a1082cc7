"""Every bad input gets its documented status and code, as JSON, never a 500."""

import base64
import json

import pytest

from tests.modelkit import png_bytes

pytestmark = pytest.mark.django_db

URL = "/api/apps/calc/predict/"


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code
    assert isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in body["error"]
    return body


@pytest.mark.parametrize(
    "payload, status, code",
    [
        ({}, 400, "bad_input"),
        ({"image": "!!!not base64!!!"}, 400, "bad_base64"),
        ({"image": ""}, 400, "bad_base64"),
        ({"image": 12}, 400, "bad_base64"),
        ({"image": base64.b64encode(b"hello, not an image").decode()}, 415, "not_an_image"),
        ({"images": []}, 400, "bad_input"),
        ({"images": "abc"}, 400, "bad_input"),
        ({"images": [base64.b64encode(png_bytes()).decode()] * 65}, 413, "payload_too_large"),
        ({"instances": [[1, 2, 3]]}, 400, "bad_tensor_shape"),
        ({"instances": "x"}, 400, "bad_tensor_shape"),
        ({"instances": [[[["a"]] * 8] * 8]}, 400, "bad_tensor_shape"),
        ({"image": "x", "instances": []}, 400, "bad_input"),
        ({"unknown": 1}, 400, "bad_input"),
    ],
)
def test_bad_json_inputs(store, client, payload, status, code):
    assert_error(client.post(URL, payload, format="json"), status, code)


def test_json_that_is_not_an_object(store, client):
    assert_error(client.post(URL, "[1, 2]", content_type="application/json"), 400, "bad_input")


def test_malformed_json(store, client):
    assert_error(client.post(URL, "{not json", content_type="application/json"), 400, "malformed_body")


def test_empty_body(store, client):
    assert_error(client.post(URL, "", content_type="application/json"), 400, "bad_input")


def test_unsupported_content_type(store, client):
    assert_error(client.post(URL, b"\x00\x01", content_type="application/octet-stream"), 415, "unsupported_media_type")


def test_upload_not_an_image(store, client, tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(b"GIF89a not really")
    with path.open("rb") as handle:
        assert_error(client.post(URL, {"img": handle}, format="multipart"), 415, "not_an_image")


def test_image_over_pixel_limit(store, client, settings, yyai):
    yyai.MAX_IMAGE_PIXELS = 100
    data = base64.b64encode(png_bytes(size=(20, 20))).decode()
    assert_error(client.post(URL, {"image": data}, format="json"), 413, "image_too_large")


def test_body_over_limit_refused_up_front(store, client, settings, yyai):
    yyai.MAX_BODY_BYTES = 2048
    body = json.dumps({"image": "A" * 4096})
    assert_error(client.post(URL, body, content_type="application/json"), 413, "payload_too_large")


def test_base64_over_image_limit(store, client, settings, yyai):
    yyai.MAX_IMAGE_BYTES = 1024
    assert_error(client.post(URL, {"image": "A" * 4000}, format="json"), 413, "payload_too_large")


def test_unknown_app(store, client):
    assert_error(client.post("/api/apps/nope/predict/", {"image": "x"}, format="json"), 404, "app_not_found")
    assert_error(client.get("/api/apps/nope/"), 404, "app_not_found")
    assert_error(client.get("/nope/"), 404, "app_not_found")


def test_unknown_url(store, client):
    assert_error(client.get("/api/apps/calc/predict/extra/"), 404, "not_found")


def test_wrong_method(store, client):
    assert_error(client.delete(URL), 405, "method_not_allowed")


def test_image_path_disabled_outside_and_missing(store, client, settings, tmp_path, yyai):
    yyai.IMAGE_ROOT = None
    assert_error(client.post(URL, {"imgPath": "x.png"}, format="json"), 403, "image_path_disabled")
    root = (tmp_path / "root").resolve()
    root.mkdir()
    (tmp_path / "secret.png").write_bytes(png_bytes())
    (root / "link.png").symlink_to(tmp_path / "secret.png")
    yyai.IMAGE_ROOT = root
    for path in ("../secret.png", str(tmp_path / "secret.png"), "link.png"):
        assert_error(client.post(URL, {"imgPath": path}, format="json"), 403, "path_outside_root")
    assert_error(client.post(URL, {"imgPath": "missing.png"}, format="json"), 404, "path_not_found")
    assert_error(client.post(URL, {"imgPath": 5}, format="json"), 400, "bad_input")


def test_no_sample_image(store, client):
    assert_error(client.get("/api/apps/cls/predict/"), 404, "no_sample")


def test_app_without_available_version_is_503(store, client):
    (store / "empty").mkdir()
    response = client.post("/api/apps/empty/predict/", {"image": base64.b64encode(png_bytes()).decode()}, format="json")
    assert "no available version" in assert_error(response, 503, "app_not_available")["error"]
    assert int(response["Retry-After"]) > 0
