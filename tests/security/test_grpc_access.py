"""gRPC is locked down like REST: loopback by default, the REST API's tokens, TLS, capped messages, quiet errors."""

import subprocess

import grpc
import numpy as np
import pytest
import tensorflow as tf
from rest_framework.authtoken.models import Token
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests import modelkit
from tests.compat.conftest import ONES
from yyai import services
from yyai.compat.grpc_service import build_server
from yyai.management.commands.grpcserve import Command

pytestmark = pytest.mark.django_db(transaction=True)


def predict(channel, *, token=None, array=ONES):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "calc.a"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(array))
    metadata = [("authorization", f"Token {token}")] if token else None
    return prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, 10.0, metadata=metadata)


def serve(**kwargs):
    server, port = build_server("127.0.0.1:0", workers=2, **kwargs)
    server.start()
    return server, port


def refused(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def test_health_probes_need_no_token_where_predicts_do(store):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    server, port = serve(permission="staff")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING  # kubelet's gRPC probe sends no token
            assert refused(lambda: predict(channel)).code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        server.stop(0).wait()


def test_grpcserve_binds_the_loopback_by_default():
    parser = Command().create_parser("manage.py", "grpcserve")
    assert parser.parse_args([]).host == "127.0.0.1"


@pytest.mark.parametrize("rule", ["authenticated", "staff"])
def test_a_login_rule_needs_a_token_of_the_rest_api(store, django_user_model, rule):
    user = django_user_model.objects.create_user("joe", password="pw-joe-123")
    boss = django_user_model.objects.create_user("boss", password="pw-boss-123", is_staff=True)
    server, port = serve(permission=rule)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            assert refused(lambda: predict(channel)).code() == grpc.StatusCode.UNAUTHENTICATED
            assert refused(lambda: predict(channel, token="0" * 40)).code() == grpc.StatusCode.UNAUTHENTICATED
            joes = Token.objects.create(user=user).key
            if rule == "staff":
                assert refused(lambda: predict(channel, token=joes)).code() == grpc.StatusCode.PERMISSION_DENIED
            else:
                assert tf.make_ndarray(predict(channel, token=joes).outputs["y"]).tolist() == [[64.0]]
            boss_token = Token.objects.create(user=boss).key
            assert tf.make_ndarray(predict(channel, token=boss_token).outputs["y"]).tolist() == [[64.0]]
    finally:
        server.stop(0).wait()


def test_tls(store, tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    server, port = serve(tls=(cert.read_bytes(), key.read_bytes()))
    try:
        credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        with grpc.secure_channel(f"localhost:{port}", credentials) as channel:
            assert tf.make_ndarray(predict(channel).outputs["y"]).tolist() == [[64.0]]
        with grpc.insecure_channel(f"127.0.0.1:{port}") as plain:
            assert refused(lambda: predict(plain)).code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(0).wait()


def test_messages_over_the_limit_and_unexpected_errors(store, monkeypatch):
    server, port = serve(max_message_bytes=64 * 1024)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            big = np.ones((300, *modelkit.SHAPE), np.float32)  # 77 KB
            assert refused(lambda: predict(channel, array=big)).code() == grpc.StatusCode.RESOURCE_EXHAUSTED

            def broken(request):
                raise RuntimeError("/srv/secret/model_store/calc/a.h5: TF internals")

            monkeypatch.setattr(services, "infer", broken)
            error = refused(lambda: predict(channel))
            assert error.code() == grpc.StatusCode.INTERNAL and "secret" not in error.details()
            assert error.details() == "internal server error; the details are in the server log"
    finally:
        server.stop(0).wait()
