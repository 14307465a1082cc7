"""The other seeds' clients over real HTTP: /<app>/predictor (base64 in and out) and /<app>/infer (code/message)."""

import base64

import cv2
import numpy as np
import pytest
import requests

from tests.compat.conftest import write_version
from tests.modelkit import png_bytes
from yyai import services


@pytest.fixture
def url(live_server, store):
    return live_server.url


def test_predictor_answers_the_image_annotated_as_base64_jpeg(url):
    image = png_bytes(0, size=(64, 48), channels=3)
    r = requests.post(f"{url}/calc/predictor", data=base64.b64encode(image), timeout=30)
    assert r.status_code == 200, r.text
    jpeg = base64.b64decode(r.content, validate=True)
    assert jpeg[:3] == b"\xff\xd8\xff"
    drawn = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert drawn.shape == (48, 64, 3)
    assert drawn.max() > 100  # the black image now carries text
    assert r.headers["X-Model-Version"]


def test_predictor_takes_a_data_url_and_refuses_garbage(url):
    data_url = b"data:image/png;base64," + base64.b64encode(png_bytes(255))
    assert requests.post(f"{url}/calc/predictor", data=data_url, timeout=30).status_code == 200
    bad = requests.post(f"{url}/calc/predictor", data=b"%%% not base64", timeout=30)
    assert bad.status_code == 400 and "base64" in bad.json()["error"]
    assert requests.post(f"{url}/nope/predictor", data=b"AAAA", timeout=30).status_code == 404
    not_image = requests.post(f"{url}/calc/predictor", data=base64.b64encode(b"plain text"), timeout=30)
    assert not_image.status_code == 415


def test_both_take_what_the_canonical_api_takes(url):
    image = png_bytes(255)
    drawn = requests.post(f"{url}/calc/predictor", json={"image": base64.b64encode(image).decode()}, timeout=30)
    assert drawn.status_code == 200 and base64.b64decode(drawn.content)[:3] == b"\xff\xd8\xff"
    uploaded = requests.post(f"{url}/calc/predictor", files={"image": ("x.png", image, "image/png")}, timeout=30)
    assert uploaded.status_code == 200 and uploaded.content == drawn.content
    as_form = requests.post(
        f"{url}/calc/predictor",
        data=base64.b64encode(image),  # curl -d @image.b64
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
    assert as_form.status_code == 200 and as_form.content == drawn.content
    two = requests.post(f"{url}/calc/predictor", json={"images": [base64.b64encode(image).decode()] * 2}, timeout=30)
    assert two.status_code == 400 and "one image" in two.json()["error"]
    inferred = requests.post(f"{url}/cls/infer", json={"image": base64.b64encode(image).decode()}, timeout=30)
    assert inferred.status_code == 200 and inferred.json()["data"]["result"][0]["label"] in ("x", "y", "z")


def test_infer_answers_code_message_data(url):
    r = requests.post(f"{url}/cls/infer", files={"img": ("x.png", png_bytes(255), "image/png")}, timeout=30)
    assert r.status_code == 200
    body = r.json()
    assert (body["code"], body["message"]) == (0, "success")
    assert body["data"]["app"] == "cls" and body["data"]["result"][0]["label"] in ("x", "y", "z")


@pytest.mark.parametrize(
    "kwargs, status, words",
    [
        ({"files": {"other": ("x.png", b"x", "image/png")}}, 400, "'img'"),
        ({"files": {"img": ("x.png", b"not an image", "image/png")}}, 415, "not an image"),
        ({"json": {"img": "%%%"}}, 400, "base64"),
        ({"json": {"instances": [[1.0]]}}, 400, "one image"),
        ({"data": "a=b", "headers": {"Content-Type": "text/csv"}}, 415, "Unsupported media type"),
    ],
)
def test_infer_errors_are_code_minus_one(url, kwargs, status, words):
    r = requests.post(f"{url}/calc/infer", timeout=30, **kwargs)
    assert r.status_code == status
    body = r.json()
    assert body["code"] == -1 and words in body["message"] and set(body) == {"code", "message"}


def test_both_follow_a_reload(url, numbered):
    def infer():
        r = requests.post(f"{url}/num/infer", files={"img": ("x.png", png_bytes(255), "image/png")}, timeout=30)
        return r.json()["data"]

    def predictor_version():
        r = requests.post(f"{url}/num/predictor", data=base64.b64encode(png_bytes(255)), timeout=30)
        return r.headers["X-Model-Version"]

    assert (infer()["version"], infer()["result"][0]["value"], predictor_version()) == ("1", 64.0, "1")
    write_version(numbered, 2, 3.0)
    services.reload_app(app="num")
    assert (infer()["version"], infer()["result"][0]["value"], predictor_version()) == ("2", 192.0, "2")
