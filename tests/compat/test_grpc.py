"""TF Serving's gRPC API, called exactly as TF Serving clients do (PredictionServiceStub), on a real port."""

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tests.compat.conftest import ONES, write_version
from tests.modelkit import png_bytes
from yyai import services
from yyai.compat.grpc_service import build_server
from yyai.fleet.process_registry import get_registry
from yyai.services.addressing import version_number

pytestmark = pytest.mark.django_db


@pytest.fixture
def channel(store):
    server, port = build_server("127.0.0.1:0", workers=4)
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel
    server.stop(0).wait()


@pytest.fixture
def stub(channel):
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


def predict(stub, name, tensor, *, version=None, output_filter=()):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = "serving_default"
    if version is not None:
        request.model_spec.version.value = version
    request.inputs["input"].CopyFrom(tensor)
    request.output_filter.extend(output_filter)
    return stub.Predict(request, 10.0)


def test_predict_every_model_of_an_app(stub):
    response = predict(stub, "calc", tf.make_tensor_proto(np.ones((2, 8, 8, 1), np.float32)))
    assert sorted(response.outputs) == ["a", "b"]
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["a"]), [[64.0], [64.0]])
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["b"]), [[128.0], [128.0]])
    serving = get_registry().get("calc").current.id
    assert response.model_spec.name == "calc" and response.model_spec.version.value == version_number(serving)


def test_predict_one_model_output_filter_and_images(stub):
    response = predict(stub, "calc", tf.make_tensor_proto(ONES), output_filter=["b"])
    assert list(response.outputs) == ["b"]
    images = tf.make_tensor_proto([png_bytes(255)], dtype=tf.string)
    np.testing.assert_allclose(tf.make_ndarray(predict(stub, "calc.a", images).outputs["y"]), [[64.0]])


def test_metadata_and_status(stub, channel):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "calc.b"
    response = stub.GetModelMetadata(request, 10.0)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    signature = signatures.signature_def["serving_default"]
    assert list(signature.outputs) == ["y"]  # one model: its own signature
    assert [d.size for d in signature.inputs["pixels"].tensor_shape.dim] == [-1, 8, 8, 1]
    status_stub = model_service_pb2_grpc.ModelServiceStub(channel)
    status = status_stub.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "cls"}), 10.0)
    (version,) = status.model_version_status
    assert version.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE and version.status.error_code == 0


@pytest.mark.parametrize(
    "name, array, version, code, words",
    [
        ("nope", ONES, None, grpc.StatusCode.NOT_FOUND, "no model app named 'nope'"),
        ("calc.zzz", ONES, None, grpc.StatusCode.NOT_FOUND, "has no model"),
        ("calc", np.ones((1, 3), np.float32), None, grpc.StatusCode.INVALID_ARGUMENT, "shape"),
        ("calc", ONES, 12345, grpc.StatusCode.NOT_FOUND, "Servable not found"),
    ],
)
def test_bad_requests_are_grpc_errors(stub, name, array, version, code, words):
    with pytest.raises(grpc.RpcError) as caught:
        predict(stub, name, tf.make_tensor_proto(array), version=version)
    assert caught.value.code() == code and words in caught.value.details()


def test_a_reload_reaches_grpc(stub, numbered):
    np.testing.assert_allclose(tf.make_ndarray(predict(stub, "num", tf.make_tensor_proto(ONES)).outputs["y"]), [[64]])
    write_version(numbered, 2, 3.0)
    services.reload_app(app="num")
    response = predict(stub, "num", tf.make_tensor_proto(ONES), version=2)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["y"]), [[192.0]])
    assert response.model_spec.version.value == 2
    with pytest.raises(grpc.RpcError) as caught:
        predict(stub, "num", tf.make_tensor_proto(ONES), version=1)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_string_elements_past_the_limit_are_refused_from_the_shape(stub):
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

    many = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=100_000)]),
    )
    many.string_val.extend([b""] * 100_000)
    with pytest.raises(grpc.RpcError) as caught:
        predict(stub, "calc", many)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "limit is 65536" in caught.value.details()


def test_the_standard_health_service_answers_for_the_server_and_each_app(channel, store):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    health = health_pb2_grpc.HealthStub(channel)
    status = lambda service: health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status  # noqa: E731
    serving = health_pb2.HealthCheckResponse.SERVING
    assert status("") == status("calc") == status("tensorflow.serving.PredictionService") == serving
    with pytest.raises(grpc.RpcError) as unknown:
        status("no-such-app")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    get_registry().get("calc")._current = None  # the app serves nothing now (as after a failed first load)
    try:
        assert status("calc") == health_pb2.HealthCheckResponse.NOT_SERVING
        assert status("") == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        get_registry().get("calc").load()
    assert status("calc") == serving


def test_reflection_lists_every_service_as_grpcurl_asks(channel):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    [answer] = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
    names = {service.name for service in answer.list_services_response.service}
    assert {
        "tensorflow.serving.PredictionService",
        "tensorflow.serving.ModelService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= names
    [described] = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(file_containing_symbol="tensorflow.serving.PredictionService")]),
        timeout=10,
    )
    assert described.file_descriptor_response.file_descriptor_proto  # grpcurl can build requests from it


def test_a_version_label_routes_a_tf_serving_client(stub, channel, numbered):
    """TF Serving's ModelSpec.version_label, as its Python client sends it."""
    write_version(numbered, 2, 3.0)
    services.reload_app(app="num", version=1)
    services.set_routes(app="num", labels={"canary": "2", "stable": "1"})
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "num"
    request.model_spec.version_label = "canary"
    request.inputs["input"].CopyFrom(tf.make_tensor_proto(ONES))
    response = stub.Predict(request, 10.0)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["y"]), [[192.0]])
    assert response.model_spec.version.value == 2
    request.model_spec.version_label = "stable"
    assert stub.Predict(request, 10.0).model_spec.version.value == 1
    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = "num"
    status.model_spec.version_label = "canary"
    answer = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(status, 10.0)
    assert [(s.version, s.state) for s in answer.model_version_status] == [(2, 30)]  # AVAILABLE
    request.model_spec.version_label = "beta"
    with pytest.raises(grpc.RpcError) as caught:
        stub.Predict(request, 10.0)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND and "beta" in caught.value.details()
