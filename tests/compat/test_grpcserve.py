"""``manage.py grpcserve`` as a real process: it loads the store, answers TF Serving clients, stops on SIGTERM."""

import os
import signal
import subprocess
import sys

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests import modelkit
from tests.liveserver import ROOT, free_port

pytestmark = pytest.mark.slow


def test_grpcserve_serves_the_model_store(tmp_path):
    modelkit.regressor(tmp_path / "store" / "calc" / "a.h5", weight=1.0)
    port = free_port()
    env = {
        **os.environ,
        "YYAI_MODEL_STORE": str(tmp_path / "store"),
        "YYAI_DATA_DIR": str(tmp_path / "data"),
        "DJANGO_HTTPS": "0",
        "YYAI_SYNC_SECONDS": "0",
        "DJANGO_SETTINGS_MODULE": "aiserver.settings",
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    process = subprocess.Popen(
        [sys.executable, "manage.py", "grpcserve", "--port", str(port), "--host", "127.0.0.1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "calc"
        request.inputs["input"].CopyFrom(tf.make_tensor_proto(np.ones((1, *modelkit.SHAPE), np.float32)))
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=120)
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            response = stub.Predict(request, 30.0)
        np.testing.assert_allclose(tf.make_ndarray(response.outputs[modelkit.OUTPUT]), [[64.0]])  # one model
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert f"listening on 127.0.0.1:{port}" in output
