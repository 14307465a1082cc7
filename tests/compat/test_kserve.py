"""KServe v2 / Open Inference Protocol over real HTTP, with the official tritonclient[http] client."""

import numpy as np
import pytest
import requests
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.compat.conftest import ONES, write_version
from tests.modelkit import png_bytes
from yyai import services
from yyai.fleet.process_registry import get_registry


@pytest.fixture
def client(live_server, store):  # noqa: F811 - the compat client is triton's
    with triton.InferenceServerClient(url=live_server.url.removeprefix("http://"), network_timeout=30) as c:
        yield c


def infer_input(array, datatype, *, binary=True, name="input"):
    tensor = triton.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


def test_health_and_metadata(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("calc") and client.is_model_ready("calc.a")
    assert client.get_server_metadata()["name"] == "aiserver"
    meta = client.get_model_metadata("calc")
    assert meta["versions"] == [get_registry().get("calc").current.id]
    assert meta["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 8, 8, 1]}]
    assert [o["name"] for o in meta["outputs"]] == ["a", "b"]  # several models: each output under its model's stem
    one = client.get_model_metadata("calc.a")  # one model: its own signature
    assert one["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [-1, 1]}]
    assert not client.is_model_ready("calc", model_version="1")


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize(
    "datatype, dtype", [("FP32", np.float32), ("UINT8", np.uint8), ("INT32", np.int32), ("INT64", np.int64)]
)
def test_infer_every_datatype_json_and_binary(client, datatype, dtype, binary):
    batch = np.ones((2, 8, 8, 1), dtype)
    outputs = [triton.InferRequestedOutput(name, binary_data=binary) for name in ("a", "b")]
    result = client.infer("calc", [infer_input(batch, datatype, binary=binary)], outputs=outputs, request_id="req-7")
    np.testing.assert_allclose(result.as_numpy("a"), [[64.0], [64.0]])
    np.testing.assert_allclose(result.as_numpy("b"), [[128.0], [128.0]])
    response = result.get_response()
    assert response["id"] == "req-7" and response["model_name"] == "calc"


def test_outputs_selection_and_default_binary_outputs(client):
    result = client.infer("calc", [infer_input(ONES, "FP32")], outputs=[triton.InferRequestedOutput("b")])
    assert [o["name"] for o in result.get_response()["outputs"]] == ["b"]
    everything = client.infer("calc", [infer_input(ONES, "FP32")])  # no outputs: all, binary
    np.testing.assert_allclose(everything.as_numpy("a"), [[64.0]])
    np.testing.assert_allclose(everything.as_numpy("b"), [[128.0]])


def test_bytes_inputs_are_encoded_images(client):
    images = np.array([png_bytes(255), png_bytes(255)], dtype=np.object_)
    result = client.infer("calc.a", [infer_input(images, "BYTES")])
    np.testing.assert_allclose(result.as_numpy("y"), [[64.0], [64.0]])


def test_nested_json_data_over_plain_http(live_server, store):
    body = {
        "id": "n1",
        "inputs": [{"name": "x", "shape": [1, 8, 8, 1], "datatype": "FP32", "data": ONES.tolist()}],
        "outputs": [{"name": "a"}],
    }
    r = requests.post(f"{live_server.url}/v2/models/calc/infer", json=body, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"] == [{"name": "a", "datatype": "FP32", "shape": [1, 1], "data": [64.0]}]
    assert r.json()["id"] == "n1"


@pytest.mark.parametrize(
    "model, array, datatype, outputs, words",
    [
        ("calc", np.ones((2, 3), np.float32), "FP32", None, "shape"),
        ("nope", ONES, "FP32", None, "no model app named 'nope'"),
        ("calc.zzz", ONES, "FP32", None, "has no model 'zzz'"),
        ("calc", ONES, "FP32", ["zzz"], "unknown output"),
    ],
)
def test_bad_requests_raise_with_the_server_message(client, model, array, datatype, outputs, words):
    requested = [triton.InferRequestedOutput(o) for o in outputs] if outputs else None
    with pytest.raises(InferenceServerException, match=words):
        client.infer(model, [infer_input(array, datatype)], outputs=requested)


def test_malformed_bodies_answer_400_with_an_error(live_server, store):
    url = f"{live_server.url}/v2/models/calc/infer"
    for body in (b"", b"{nope", b'{"inputs": []}', b'{"inputs": [{"name": "x", "shape": [1], "datatype": "STR"}]}'):
        r = requests.post(url, data=body, timeout=30)
        assert r.status_code == 400 and list(r.json()) == ["error"], body


def test_versions_follow_a_reload(client, numbered):
    assert client.get_model_metadata("num")["versions"] == ["1"]
    write_version(numbered, 2, 3.0)
    services.reload_app(app="num")
    result = client.infer("num", [infer_input(ONES, "FP32")], model_version="2")
    np.testing.assert_allclose(result.as_numpy("y"), [[192.0]])
    assert result.get_response()["model_version"] == "2"
    with pytest.raises(InferenceServerException, match="serving version is 2"):
        client.infer("num", [infer_input(ONES, "FP32")], model_version="1")
    assert client.is_model_ready("num", "2") and not client.is_model_ready("num", "1")
