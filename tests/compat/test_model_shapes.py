"""Every model shape through TF Serving REST, TF Serving gRPC (tensorflow-serving-api) and KServe v2 (tritonclient).

Models: tests/zoo.py (two heads, two inputs, any size, int32, strings with two signatures, and a TF1
graph without batch dimension in TF Serving's version layout).
"""

import base64

import cv2
import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
import tritonclient.http as triton
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc
from tritonclient.utils import InferenceServerException

from yyai.compat.grpc_service import build_server

FACE = np.ones((8, 8, 3), np.float32)


def png(width=8, height=8, value=255) -> bytes:
    return cv2.imencode(".png", np.full((height, width, 3), value, np.uint8))[1].tobytes()


# -- TF Serving REST --------------------------------------------------------------------------------


@pytest.fixture
def v1(live_server, zoo_store):
    def post(path, body):
        return requests.post(f"{live_server.url}/v1/models/{path}", json=body, timeout=30)

    post.url = f"{live_server.url}/v1/models"
    return post


def test_rest_several_outputs_rows_and_columns(v1):
    image = {"b64": base64.b64encode(png()).decode()}
    rows = v1("agesex:predict", {"instances": [image, image]}).json()["predictions"]
    assert [sorted(row) for row in rows] == [["age", "sex"]] * 2 and rows[0]["age"] == [96.0]
    columns = v1("agesex:predict", {"inputs": {"face": [FACE.tolist()]}}).json()["outputs"]
    assert columns["age"] == [[96.0]] and len(columns["sex"][0]) == 2  # ready tensors: no pixel scaling


def test_rest_several_inputs(v1):
    image = {"b64": base64.b64encode(png()).decode()}
    rows = v1("meta:predict", {"instances": [{"image": image, "meta": [1, 2, 3, 4]}]})
    assert rows.json() == {"predictions": [[292.0]]}
    columns = v1("meta:predict", {"inputs": {"image": [FACE.tolist()], "meta": [[0, 0, 0, 1]]}})
    assert columns.json() == {"outputs": [[202.0]]}
    missing = v1("meta:predict", {"inputs": {"image": [FACE.tolist()]}})
    assert missing.status_code == 400 and "missing input 'meta'" in missing.json()["error"]


def test_rest_strings_b64_and_signature_name(v1):
    rows = v1("text:predict", {"instances": ["ab c", {"b64": base64.b64encode(b"x y z").decode()}]}).json()
    assert rows == {"predictions": [{"length": 4, "upper": "AB C"}, {"length": 5, "upper": "X Y Z"}]}
    words = v1("text:predict", {"signature_name": "words", "inputs": {"text": ["a b", "c"]}}).json()
    assert words == {"outputs": [2, 1]}
    wrong = v1("text:predict", {"signature_name": "nope", "instances": ["a"]})
    assert wrong.status_code == 400 and "no signature 'nope'" in wrong.json()["error"]


def test_rest_tf1_graph_in_tf_serving_layout(v1):
    columns = v1("detector:predict", {"signature_name": "detected_model", "inputs": {"image": FACE.tolist()}})
    assert columns.json() == {"outputs": {"boxes": [[0.0, 1.0, 2.0, 3.0]], "classes": [7], "score": 384.0}}
    assert v1("detector/versions/1:predict", {"inputs": FACE.tolist()}).status_code == 200
    meta = requests.get(f"{v1.url}/detector/metadata", timeout=30).json()["metadata"]["signature_def"]
    signature = meta["signature_def"]["detected_model"]
    assert [d["size"] for d in signature["inputs"]["image"]["tensor_shape"]["dim"]] == ["8", "8", "3"]
    assert signature["outputs"]["classes"]["dtype"] == "DT_INT64"
    text = requests.get(f"{v1.url}/text/metadata", timeout=30).json()["metadata"]["signature_def"]
    assert sorted(text["signature_def"]) == ["serving_default", "words"]
    assert text["signature_def"]["serving_default"]["inputs"]["text"]["dtype"] == "DT_STRING"


def test_rest_images_of_any_size_in_rows(v1):
    images = [{"b64": base64.b64encode(png(w, h, 51)).decode()} for w, h in ((3, 4), (6, 2))]
    assert v1("anysize:predict", {"instances": images}).json() == {"predictions": [[pytest.approx(0.6)]] * 2}


# -- TF Serving gRPC --------------------------------------------------------------------------------


@pytest.fixture
def stub(zoo_store, db):
    server, port = build_server("127.0.0.1:0", workers=4)
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel)
    server.stop(0).wait()


def grpc_predict(stub, name, inputs, *, signature="", output_filter=()):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(value)
    request.output_filter.extend(output_filter)
    return stub.Predict(request, 10.0)


def test_grpc_several_inputs_and_outputs(stub):
    response = grpc_predict(
        stub,
        "meta",
        {"image": tf.make_tensor_proto(FACE[None]), "meta": tf.make_tensor_proto(np.array([[1, 1, 1, 1]], np.float32))},
    )
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["score"]), [[232.0]])
    heads = grpc_predict(stub, "agesex", {"face": tf.make_tensor_proto(FACE[None])}, output_filter=["sex"])
    assert list(heads.outputs) == ["sex"] and tf.make_ndarray(heads.outputs["sex"]).shape == (1, 2)


def test_grpc_strings_ints_and_signatures(stub):
    text = tf.make_tensor_proto(np.array([b"ab c", b"d"], dtype=object))
    response = grpc_predict(stub, "text", {"text": text})
    assert tf.make_ndarray(response.outputs["upper"]).tolist() == [b"AB C", b"D"]
    assert tf.make_ndarray(response.outputs["length"]).tolist() == [4, 1]
    words = grpc_predict(stub, "text", {"text": text}, signature="words")
    assert words.model_spec.signature_name == "words" and tf.make_ndarray(words.outputs["words"]).tolist() == [2, 1]
    ids = tf.make_tensor_proto(np.array([[9, 9, 9, 9, 4]], np.int32))
    np.testing.assert_allclose(tf.make_ndarray(grpc_predict(stub, "tokens", {"ids": ids}).outputs["mean_id"]), [[8.0]])
    with pytest.raises(grpc.RpcError) as caught:
        grpc_predict(stub, "tokens", {"ids": tf.make_tensor_proto(np.ones((1, 5), np.float32))})
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "takes integers" in caught.value.details()


def test_grpc_tf1_graph_and_metadata_of_every_signature(stub):
    response = grpc_predict(stub, "detector", {"image": tf.make_tensor_proto(FACE)}, signature="detected_model")
    assert tf.make_ndarray(response.outputs["boxes"]).shape == (1, 4)
    assert tf.make_ndarray(response.outputs["classes"]).tolist() == [7]
    assert float(tf.make_ndarray(response.outputs["score"])) == 384.0
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "text"
    signatures = get_model_metadata_pb2.SignatureDefMap()
    stub.GetModelMetadata(request, 10.0).metadata["signature_def"].Unpack(signatures)
    assert sorted(signatures.signature_def) == ["serving_default", "words"]
    assert sorted(signatures.signature_def["serving_default"].outputs) == ["length", "upper"]


def test_grpc_declared_size_is_checked_before_allocating(stub):
    huge = tf.make_tensor_proto(np.float32(1.0))
    huge.tensor_shape.Clear()
    for size in (1 << 16, 1 << 16, 1 << 2):  # 64 GiB of float32, sent in a few bytes
        huge.tensor_shape.dim.add(size=size)
    with pytest.raises(grpc.RpcError) as caught:
        grpc_predict(stub, "meta", {"image": huge, "meta": tf.make_tensor_proto(np.ones((1, 4), np.float32))})
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


# -- KServe v2 (tritonclient) -----------------------------------------------------------------------


@pytest.fixture
def kserve(live_server, zoo_store):
    with triton.InferenceServerClient(url=live_server.url.removeprefix("http://"), network_timeout=30) as client:
        yield client


def infer_input(name, array, datatype, binary=True):
    tensor = triton.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


@pytest.mark.parametrize("binary", [True, False])
def test_kserve_several_inputs_and_datatypes(kserve, binary):
    result = kserve.infer(
        "meta",
        [
            infer_input("image", FACE[None], "FP32", binary),
            infer_input("meta", np.array([[1, 1, 1, 1]], np.float64), "FP64", binary),
        ],
    )
    np.testing.assert_allclose(result.as_numpy("score"), [[232.0]])
    ids = infer_input("ids", np.array([[1, 2, 3, 4, 5]], np.int32), "INT32", binary)
    np.testing.assert_allclose(kserve.infer("tokens", [ids]).as_numpy("mean_id"), [[3.0]])
    out = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("length", "upper")]
    text = kserve.infer("text", [infer_input("text", np.array([b"ab c"], dtype=object), "BYTES", binary)], outputs=out)
    upper = [u if isinstance(u, bytes) else u.encode() for u in text.as_numpy("upper").tolist()]  # JSON: text
    assert text.as_numpy("length").tolist() == [4] and upper == [b"AB C"]
    response = text.get_response()
    assert [(o["name"], o["datatype"]) for o in response["outputs"]] == [("length", "INT32"), ("upper", "BYTES")]


def test_kserve_metadata_and_unbatched_tf1_graph(kserve):
    meta = kserve.get_model_metadata("detector")
    assert meta["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [8, 8, 3]}]
    assert {o["name"]: o["datatype"] for o in meta["outputs"]} == {"boxes": "FP32", "classes": "INT64", "score": "FP32"}
    result = kserve.infer("detector", [infer_input("image", FACE, "FP32")])
    assert result.as_numpy("classes").tolist() == [7] and result.as_numpy("boxes").shape == (1, 4)
    assert kserve.get_model_metadata("anysize")["inputs"][0]["shape"] == [-1, -1, -1, 3]
    with pytest.raises(InferenceServerException, match="takes shape"):
        kserve.infer(
            "meta", [infer_input("image", FACE[None], "FP32"), infer_input("meta", np.ones((1, 3), np.float32), "FP32")]
        )


# -- the model refuses the input: the caller's error on every protocol ---------------------------------

JPEG = cv2.imencode(".jpg", np.full((6, 4, 3), 128, np.uint8))[1].tobytes()
OUT_OF_RANGE = [[1, 2, 3, 4, 5000]]  # the Embedding's table has 10 rows


def test_rest_a_token_id_past_the_table_and_bytes_the_graph_cannot_decode_are_400(v1, live_server):
    refused = v1("tokens:predict", {"instances": OUT_OF_RANGE})
    assert refused.status_code == 400 and "5000 is not in [0, 10)" in refused.json()["error"], refused.text
    assert "/" not in refused.json()["error"].split("refused the input:")[1].replace("[0, 10)", "")
    bad = v1("jpeg:predict", {"instances": [{"b64": base64.b64encode(b"not a jpeg").decode()}]})
    assert bad.status_code == 400 and "jpeg" in bad.json()["error"].lower(), bad.text
    good = v1("jpeg:predict", {"instances": [{"b64": base64.b64encode(JPEG).decode()}]})
    assert good.status_code == 200 and good.json()["predictions"] == [6]
    canonical = requests.post(
        f"{live_server.url}/api/apps/tokens/predict/", json={"instances": OUT_OF_RANGE}, timeout=30
    )
    assert canonical.status_code == 400 and canonical.json()["code"] == "model_rejected_input", canonical.text


def test_grpc_a_refused_input_is_invalid_argument(stub):
    with pytest.raises(grpc.RpcError) as raised:
        grpc_predict(stub, "tokens", {"ids": tf.make_tensor_proto(np.array(OUT_OF_RANGE, np.int32))})
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "5000" in raised.value.details()


def test_kserve_a_refused_input_is_400(kserve):
    with pytest.raises(InferenceServerException) as raised:
        kserve.infer("jpeg", [infer_input("image_bytes", np.array([b"\xff\xd8 broken"], dtype=object), "BYTES")])
    assert raised.value.status() == "400" and "jpeg" in raised.value.message().lower()
