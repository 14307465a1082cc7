"""The canonical predict API on every model shape: named inputs, several outputs, any dtype and size.

Each request goes through the fast path and through Django alone (tests/api/test_fastpath.py's
harness); both must answer alike.
"""

import base64
import json

import cv2
import numpy as np
import pytest

from tests.api.test_fastpath import assert_same
from yyai.http import fastpath
from yyai.models import ModelApp

pytestmark = pytest.mark.django_db(transaction=True)
FACE = np.ones((8, 8, 3)).tolist()  # pixel value 1, not scaled: ready tensors


def png(width=8, height=8, value=255) -> str:
    return base64.b64encode(cv2.imencode(".png", np.full((height, width, 3), value, np.uint8))[1].tobytes()).decode()


@pytest.fixture
def both(zoo_store):
    from a2wsgi import WSGIMiddleware
    from django.core.wsgi import get_wsgi_application

    django = WSGIMiddleware(get_wsgi_application(), workers=4)
    fast, slow = fastpath.FastPredict(django), fastpath.FastPredict(django)
    slow.enabled = False
    return fast, slow


def predict(both, app, body):
    return assert_same(*both, json.dumps(body).encode(), path=f"/api/apps/{app}/predict/")


def test_two_heads_answer_one_entry_with_both_outputs(both):
    status, answer = predict(both, "agesex", {"image": png()})
    assert status == 200
    (entry,) = answer["result"]
    assert entry["name"] == "heads.keras" and set(entry) == {"name", "outputs"}
    assert entry["outputs"]["age"] == 96.0 and entry["outputs"]["sex"][0] > 0.97


def test_image_plus_other_inputs(both):
    status, answer = predict(both, "meta", {"image": png(), "inputs": {"meta": [[1, 2, 3, 4]]}})
    assert status == 200 and answer["result"] == [{"name": "m.keras", "value": 292.0}]
    status, answer = predict(both, "meta", {"images": [png(), png(value=0)], "inputs": {"meta": [[0] * 4, [1] * 4]}})
    assert status == 200 and [row[0]["value"] for row in answer["predictions"]] == [192.0, 40.0]


def test_multipart_image_with_an_inputs_field(both):
    boundary = "b0undary"
    image = base64.b64decode(png())
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="img"; filename="f.png"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        + image
        + (
            f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="inputs"\r\n\r\n'
            f'{{"meta": [[1, 1, 1, 1]]}}\r\n--{boundary}--\r\n'
        ).encode()
    )
    status, answer = assert_same(
        *both,
        body,
        path="/api/apps/meta/predict/",
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert status == 200 and answer["result"][0]["value"] == 232.0


def test_columnar_inputs_and_dict_rows(both):
    status, answer = predict(both, "meta", {"inputs": {"image": [FACE, FACE], "meta": [[0] * 4, [1] * 4]}})
    assert status == 200 and [row[0]["value"] for row in answer["predictions"]] == [192.0, 232.0]
    status, answer = predict(both, "meta", {"instances": [{"image": FACE, "meta": [1, 1, 1, 1]}]})
    assert status == 200 and answer["predictions"] == [[{"name": "m.keras", "value": 232.0}]]


def test_images_of_any_size(both):
    status, answer = predict(both, "anysize", {"images": [png(4, 3, 51), png(9, 7, 102), png(4, 3, 255)]})
    assert status == 200
    assert [row[0]["value"] for row in answer["predictions"]] == pytest.approx([0.6, 1.2, 3.0])


def test_int_string_and_unbatched_models(both):
    status, answer = predict(both, "tokens", {"instances": [[1, 2, 3, 4, 5]]})
    assert status == 200 and answer["predictions"] == [[{"name": "t.keras", "value": 3.0}]]
    status, answer = predict(both, "text", {"instances": ["ab c", "héllo"]})
    assert status == 200
    assert [row[0]["outputs"] for row in answer["predictions"]] == [
        {"length": 4, "upper": "AB C"},
        {"length": 6, "upper": "HéLLO"},
    ]
    status, answer = predict(both, "detector", {"inputs": {"image": FACE}})
    assert status == 200
    assert answer["predictions"] == [
        [{"name": "detector", "outputs": {"boxes": [[0.0, 1.0, 2.0, 3.0]], "classes": 7, "score": 384.0}}]
    ]
    status, answer = predict(both, "detector", {"image": png(value=255)})
    assert status == 200 and answer["result"][0]["outputs"]["score"] == 384.0


@pytest.mark.parametrize(
    "app, body, words",
    [
        ("meta", {"image": png()}, "missing input 'meta'; the inputs are 'image', 'meta'"),
        ("meta", {"inputs": {"image": [FACE], "meta": [[1, 2, 3, 4]], "extra": [1]}}, "unknown input 'extra'"),
        ("meta", {"image": png(), "inputs": {"meta": [[1, 2, 3]]}}, "input 'meta' takes shape [4] per row, got [3]"),
        ("meta", {"image": png(), "inputs": {"meta": [[1, 2, 3, 4]], "image": [FACE]}}, "given twice"),
        ("meta", {"image": png(), "inputs": "nope"}, "'inputs' must be an object naming the inputs image, meta"),
        ("meta", {"instances": [{"image": FACE}], "inputs": {}}, "several inputs found"),
        ("tokens", {"instances": [[1.5, 2, 3, 4, 5]]}, "input 'ids' takes integers (int32), got floats"),
        ("tokens", {"instances": [[1, 2, 3, 4, 2**40]]}, "is out of its range"),
        ("tokens", {"image": png()}, "no input that takes images"),
        ("text", {"instances": [1, 2]}, "input 'text' takes strings, got int"),
        ("detector", {"inputs": {"image": [FACE, FACE]}}, "input 'image' takes shape [8, 8, 3], got [2, 8, 8, 3]"),
    ],
)
def test_bad_input_is_a_400_that_names_the_input(both, app, body, words):
    status, answer = predict(both, app, body)
    assert status == 400, answer
    assert words in answer["error"]


def test_app_detail_shows_every_input_and_output(zoo_rows, client):
    models = client.get("/api/apps/meta/").json()["models"]
    assert models[0]["inputs"] == [
        {"name": "image", "dtype": "float32", "shape": [None, 8, 8, 3]},
        {"name": "meta", "dtype": "float32", "shape": [None, 4]},
    ]
    detector = client.get("/api/apps/detector/").json()["models"][0]
    assert (detector["format"], detector["signature"], detector["batched"]) == ("tf1_session", "detected_model", False)
    assert detector["inputs"] == [{"name": "image", "dtype": "float32", "shape": [8, 8, 3]}]
    assert client.get("/api/apps/text/").json()["models"][0]["signatures"] == ["serving_default", "words"]
    page = client.get("/").content.decode()
    assert "ids:int32[?,5]" in page and "upper:string[?]" in page


def test_admin_shows_every_input_and_output(zoo_rows, admin_client):
    assert admin_client.get("/admin/yyai/modelapp/").status_code == 200
    page = admin_client.get(f"/admin/yyai/modelapp/{ModelApp.objects.get(name='meta').pk}/change/").content.decode()
    assert "image:float32[?,8,8,3], meta:float32[?,4] -&gt; score:float32[?,1]" in page
