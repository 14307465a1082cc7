"""Warm-up configured by the app: [warmup] shapes, a version's warmup.npz, a SavedModel's TF Serving warm-up
requests; and refusals that say which key to set."""

import logging

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from tests import modelkit
from tests.runtime.test_savedmodel import exported
from yyai.runtime.errors import ManifestError, ModelLoadError
from yyai.runtime.loader import load_model
from yyai.runtime.manifest import load_manifest
from yyai.runtime.model_util import ModelUtil
from yyai.runtime.warmup import TF_SERVING_REQUESTS

MIN_LENGTH = 81  # the dilated convolution's reach: shorter inputs have no valid output position


def long_context(path):
    """A Conv1D over a signal of any length that needs at least MIN_LENGTH samples (like a dilated audio
    model): zeros of the default warm-up length cannot run it."""
    keras.utils.set_random_seed(0)
    signal = keras.Input(shape=(None, 1), name="signal")
    x = keras.layers.Conv1D(4, 5, dilation_rate=20, activation="relu")(signal)
    x = keras.layers.GlobalMaxPooling1D()(x)
    out = keras.layers.Dense(3, activation="softmax", name="probs")(x)
    path.parent.mkdir(parents=True, exist_ok=True)
    keras.Model(signal, out).save(path)
    return path


def test_an_input_of_unknown_length_warms_up_on_the_shape_app_toml_gives(tmp_path, caplog):
    app = tmp_path / "audio"
    long_context(app / "m.keras")
    with caplog.at_level(logging.WARNING, logger="yyai.runtime.warmup"):
        ModelUtil(app).load()
    assert "[warmup] shapes = {signal = [...]}" in caplog.text  # the default could not run it: which key to set
    caplog.clear()
    (app / "app.toml").write_text("[warmup]\nshapes = {signal = [100, 1]}\n")
    util = ModelUtil(app)
    with caplog.at_level(logging.WARNING, logger="yyai.runtime.warmup"):
        util.load()
    assert caplog.text == ""
    with util.serving() as version:
        assert version.models[0].distributions == {"probs"}  # warm-up ran: it saw the softmax
        [[result]] = version.format(version.infer(version.prepare({"signal": np.zeros((1, 200, 1))}, columnar=True)))
    assert result["label"] in {"0", "1", "2"}


@pytest.mark.parametrize(
    "manifest, words",
    [
        ("[warmup]\nshapes = {sound = [100, 1]}\n", "names 'sound', which is not an input"),
        ("[warmup]\nshapes = {signal = [100]}\n", "does not fit its shape"),
        ("[warmup]\nshapes = {signal = [100, 2]}\n", "does not fit its shape"),
    ],
)
def test_warmup_shapes_that_do_not_fit_the_model_are_refused(tmp_path, manifest, words):
    app = tmp_path / "audio"
    long_context(app / "m.keras")
    (app / "app.toml").write_text(manifest)
    with pytest.raises(ModelLoadError, match=words):
        ModelUtil(app).load()


@pytest.mark.parametrize("shapes", ["[1, 2]", "{signal = [0, 1]}", "{signal = ['a']}"])
def test_warmup_shapes_must_be_lists_of_positive_integers(tmp_path, shapes):
    (tmp_path / "app.toml").write_text(f"[warmup]\nshapes = {shapes}\n")
    with pytest.raises(ManifestError, match="warmup.shapes"):
        load_manifest(tmp_path)


def test_a_versions_warmup_npz_holds_real_inputs(tmp_path):
    app = tmp_path / "audio"
    long_context(app / "m.keras")
    np.savez(app / "warmup.npz", signal=np.random.default_rng(0).random((2, 120, 1), dtype=np.float32))
    util = ModelUtil(app)
    util.load()
    assert util.current.models[0].distributions == {"probs"}
    assert "warmup.npz" in {p.name for p in (app / ".snapshots" / util.current.id).iterdir()}  # part of it


@pytest.mark.parametrize(
    "arrays, words",
    [
        ({"sound": np.zeros((1, 100, 1), np.float32)}, "gives no input signal"),
        ({"signal": np.zeros((1, 10, 1), np.float32)}, "warm-up request in warmup.npz failed"),
        ({"signal": np.array([{"a": 1}], dtype=object)}, "cannot be read as a NumPy .npz"),
    ],
)
def test_a_warmup_npz_that_does_not_run_is_refused(tmp_path, arrays, words):
    app = tmp_path / "audio"
    long_context(app / "m.keras")
    np.savez(app / "warmup.npz", **arrays)
    with pytest.raises(ModelLoadError, match=words):
        ModelUtil(app).load()


def write_requests(saved_model, *batches):
    """TF Serving's warm-up file: a TFRecord of PredictionLog, one predict request per batch."""
    path = saved_model / TF_SERVING_REQUESTS
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for batch in batches:
            request = predict_pb2.PredictRequest()
            request.inputs["pixels"].CopyFrom(tf.make_tensor_proto(batch))
            writer.write(
                prediction_log_pb2.PredictionLog(
                    predict_log=prediction_log_pb2.PredictLog(request=request)
                ).SerializeToString()
            )


def test_a_saved_models_tf_serving_warmup_requests_are_replayed(tmp_path, monkeypatch):
    saved = exported(tmp_path / "sm", weight=1.0)
    write_requests(saved, np.ones((1, *modelkit.SHAPE), np.float32), np.ones((3, *modelkit.SHAPE), np.float32))
    seen = []
    original = tf.make_ndarray
    monkeypatch.setattr(tf, "make_ndarray", lambda proto: seen.append(proto) or original(proto))
    model = load_model(saved)
    assert len(seen) == 2 and model.signature.batched


def test_a_tf_serving_warmup_request_the_model_refuses_fails_the_load(tmp_path):
    saved = exported(tmp_path / "sm", weight=1.0)
    write_requests(saved, np.ones((1, 3, 3, 1), np.float32))
    with pytest.raises(ModelLoadError, match="warm-up request record 0 of assets.extra"):
        load_model(saved)
    (saved / TF_SERVING_REQUESTS).write_bytes(b"not a tfrecord at all")
    with pytest.raises(ModelLoadError, match="cannot be read"):
        load_model(saved)
