"""TF Serving REST, over real HTTP: predict (row and columnar), classify, regress, status, metadata, errors."""

import base64

import pytest
import requests

from tests.compat.conftest import ONES, write_version
from tests.modelkit import png_bytes
from yyai import services
from yyai.fleet.process_registry import get_registry
from yyai.services.addressing import version_number


@pytest.fixture
def v1(live_server, store):
    return f"{live_server.url}/v1/models"


def post(url, body):
    return requests.post(url, json=body, timeout=30)


def test_row_format_on_a_one_model_name_gives_a_bare_list(v1):
    r = post(f"{v1}/calc.a:predict", {"instances": ONES.tolist() * 2})
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": [[64.0], [64.0]]}


def test_row_format_on_a_whole_app_gives_one_object_per_row(v1):
    r = post(f"{v1}/calc:predict", {"signature_name": "serving_default", "instances": [{"input": ONES[0].tolist()}]})
    assert r.json() == {"predictions": [{"a": [64.0], "b": [128.0]}]}


def test_columnar_format(v1):
    both = post(f"{v1}/calc:predict", {"inputs": {"input": ONES.tolist()}}).json()
    assert both == {"outputs": {"a": [[64.0]], "b": [[128.0]]}}
    assert post(f"{v1}/calc.b.keras:predict", {"inputs": ONES.tolist()}).json() == {"outputs": [[128.0]]}


def test_b64_images_are_decoded_with_the_app_preprocessing(v1):
    image = {"b64": base64.b64encode(png_bytes(255)).decode()}
    assert post(f"{v1}/calc.a:predict", {"instances": [image, image]}).json() == {"predictions": [[64.0], [64.0]]}
    assert post(f"{v1}/calc.a:predict", {"inputs": {"img_bytes": [image]}}).json() == {"outputs": [[64.0]]}


def test_classify_and_regress(v1):
    result = post(f"{v1}/cls:classify", {"examples": [{"x": ONES[0].ravel().tolist()}]}).json()["result"]
    assert [label for label, _ in result[0]] == ["x", "y", "z"]
    assert sum(score for _, score in result[0]) == pytest.approx(1.0, abs=1e-5)
    regress = post(f"{v1}/calc.a:regress", {"context": {}, "examples": [{"x": ONES[0].ravel().tolist()}] * 2})
    assert regress.json() == {"result": [64.0, 64.0]}


@pytest.mark.parametrize(
    "path, body, status, words",
    [
        ("calc:predict", {"instances": [[1.0, 2.0]]}, 400, "shape"),
        ("calc:predict", {"rows": []}, 400, "Missing 'inputs' or 'instances' key"),
        ("calc:predict", {"instances": [[0]], "inputs": [[0]]}, 400, "only one"),
        ("calc:predict", {"signature_name": "other", "instances": ONES.tolist()}, 400, "signature"),
        ("calc:predict", {"instances": [{"b64": "%%%"}]}, 400, "base64"),
        ("nope:predict", {"instances": ONES.tolist()}, 404, "no model app named 'nope'"),
        ("calc.zzz:predict", {"instances": ONES.tolist()}, 404, "calc.a, calc.b"),
        ("calc/versions/999:predict", {"instances": ONES.tolist()}, 404, "Servable not found"),
        ("calc.a:classify", {"examples": [{"x": ONES[0].ravel().tolist()}]}, 400, "regression"),
        ("calc:regress", {"examples": [{"x": ONES[0].ravel().tolist()}]}, 400, "several models"),
    ],
)
def test_bad_requests_answer_a_tf_serving_error(v1, path, body, status, words):
    r = post(f"{v1}/{path}", body)
    assert r.status_code == status
    assert list(r.json()) == ["error"] and words in r.json()["error"]


def test_body_that_is_not_json(v1):
    r = requests.post(f"{v1}/calc:predict", data=b"{nope", timeout=30)
    assert r.status_code == 400 and "JSON" in r.json()["error"]


def test_status_and_metadata(v1):
    serving = get_registry().get("calc").current.id
    status = requests.get(f"{v1}/calc", timeout=30).json()
    assert status == {
        "model_version_status": [
            {
                "version": str(version_number(serving)),
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    meta = requests.get(f"{v1}/calc/versions/{version_number(serving)}/metadata", timeout=30).json()
    assert meta["model_spec"] == {"name": "calc", "signature_name": "", "version": str(version_number(serving))}
    signature = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict"
    assert signature["inputs"]["pixels"]["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in signature["inputs"]["pixels"]["tensor_shape"]["dim"]] == ["-1", "8", "8", "1"]
    assert sorted(signature["outputs"]) == ["a", "b"]
    assert list(
        requests.get(f"{v1}/calc.a/metadata", timeout=30).json()["metadata"]["signature_def"]["signature_def"][
            "serving_default"
        ]["outputs"]
    ) == ["y"]
    assert requests.get(f"{v1}/nope", timeout=30).status_code == 404


def test_versions_in_the_url_follow_a_reload(v1, numbered):
    assert post(f"{v1}/num/versions/1:predict", {"instances": ONES.tolist()}).json() == {"predictions": [[64.0]]}
    write_version(numbered, 2, 3.0)
    services.reload_app(app="num")
    assert post(f"{v1}/num:predict", {"instances": ONES.tolist()}).json() == {"predictions": [[192.0]]}
    assert post(f"{v1}/num/versions/2:predict", {"instances": ONES.tolist()}).json() == {"predictions": [[192.0]]}
    old = post(f"{v1}/num/versions/1:predict", {"instances": ONES.tolist()})
    assert old.status_code == 404 and "serving version is 2" in old.json()["error"]
    status = requests.get(f"{v1}/num", timeout=30).json()["model_version_status"]
    assert [(s["version"], s["state"]) for s in status] == [("2", "AVAILABLE")]
    assert requests.get(f"{v1}/num/versions/1", timeout=30).status_code == 404
