"""POST/GET predict with every input form of DESIGN section 5."""

import base64

import pytest

from tests.modelkit import png_bytes

pytestmark = pytest.mark.django_db

URL = "/api/apps/calc/predict/"
EXPECTED = [{"name": "a.h5", "value": 64.0}, {"name": "b.keras", "value": 128.0}]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def check(response, result=EXPECTED):
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["app"] == "calc" and body["demo"] is False and len(body["version"]) == 12
    assert body["result"] == result
    assert body["elapsed_ms"] >= 0
    return body


@pytest.mark.parametrize("field", ["img", "image"])
def test_multipart_upload(store, client, field, tmp_path):
    path = tmp_path / "in.png"
    path.write_bytes(png_bytes(255))
    with path.open("rb") as handle:
        check(client.post(URL, {field: handle}, format="multipart"))


@pytest.mark.parametrize("prefix", ["", "data:image/png;base64,"])
def test_json_base64(store, client, prefix):
    check(client.post(URL, {"image": prefix + b64(png_bytes(255))}, format="json"))


def test_json_batch_of_images(store, client):
    response = client.post(URL, {"images": [b64(png_bytes(255)), b64(png_bytes(0))]}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert "result" not in body
    assert body["predictions"] == [EXPECTED, [{"name": "a.h5", "value": 0.0}, {"name": "b.keras", "value": 0.0}]]


def test_image_path_inside_root(store, client, settings, tmp_path, yyai):
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "x.png").write_bytes(png_bytes(255))
    yyai.IMAGE_ROOT = root.resolve()
    check(client.post(URL, {"imgPath": "sub/x.png"}, format="json"))
    check(client.post(URL, {"imgPath": "sub/x.png"}))  # form-encoded, as the seed's clients sent it


def test_instances(store, client):
    response = client.post(URL, {"instances": [[[[1.0]] * 8] * 8, [[[0.5]] * 8] * 8]}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["predictions"] == [
        EXPECTED,
        [{"name": "a.h5", "value": 32.0}, {"name": "b.keras", "value": 64.0}],
    ]


def test_get_runs_on_sample_image(store, client):
    check(client.get(URL))


def test_head_answers_as_get_does_without_a_body(store, client):
    """HEAD is GET's answer without the body (DRF routes it to the same action), never a read of a request body."""
    for url in (URL, "/api/apps/cls/predict/"):  # the sample image, and an app without one (404)
        got, head = client.get(url), client.head(url)
        assert (head.status_code, head["Content-Type"]) == (got.status_code, got["Content-Type"])
        assert head.content == b""


def test_color_image_is_converted_for_gray_model(store, client):
    check(client.post(URL, {"image": b64(png_bytes(255, channels=3))}, format="json"))


def test_resize_to_model_input(store, client):
    check(client.post(URL, {"image": b64(png_bytes(255, size=(40, 30)))}, format="json"))


def test_classification_result_and_demo_flag(store, client):
    response = client.post("/api/apps/cls/predict/", {"image": b64(png_bytes(128))}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["demo"] is True
    [entry] = body["result"]
    assert entry["name"] == "c.h5" and entry["label"] in ("x", "y", "z")
    assert len(entry["value"]) == 3 and abs(sum(entry["value"]) - 1) < 1e-3
    assert entry["score"] == max(entry["value"])
    assert entry["label"] == "xyz"[entry["value"].index(entry["score"])]


def test_seed_route_predicts(store, client):
    check(client.post("/calc/", {"image": b64(png_bytes(255))}, format="json"))
    check(client.get("/calc/"))
