"""Loading one model file: both formats, exact outputs, typed failures."""

import numpy as np
import pytest
import tensorflow as tf

from tests import modelkit
from yyai.runtime.errors import ModelLoadError
from yyai.runtime.feed import ALIGNMENT, aligned_concatenate, as_tensor
from yyai.runtime.loader import load_model, model_size


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_loads_both_formats_and_matches_the_model(tmp_path, suffix):
    path = modelkit.regressor(tmp_path / f"m{suffix}", weight=0.5)
    model = load_model(path)
    batch = np.random.default_rng(1).random((5, *modelkit.SHAPE), dtype=np.float32)
    np.testing.assert_allclose(modelkit.infer(model, batch), modelkit.expected_regression(0.5, batch), rtol=1e-5)
    assert model.name == f"m{suffix}"
    (inp,), (out,) = model.signature.inputs, model.signature.outputs
    assert (inp.dtype, inp.shape, out.dtype, out.shape) == ("float32", modelkit.SHAPE, "float32", (1,))
    assert model.signature.batched and model.fmt == "keras" and model.params == 65
    assert model.load_seconds > 0 and model.warmup_seconds > 0
    assert set(model.describe()) == {
        "name",
        "format",
        "signature",
        "batched",
        "inputs",
        "outputs",
        "signatures",
        "params",
        "load_ms",
        "warmup_ms",
        "memory_bytes",
    }
    assert model.memory_bytes >= model_size(path) > 0
    assert model.describe()["inputs"] == [{"name": inp.name, "dtype": "float32", "shape": [None, 8, 8, 1]}]


def test_classifier_equals_calling_keras_directly(tmp_path):
    import keras

    path = modelkit.classifier(tmp_path / "c.keras", classes=4)
    direct = keras.models.load_model(path, compile=False)
    model = load_model(path)
    batch = np.random.default_rng(2).random((3, *modelkit.SHAPE), dtype=np.float32)
    np.testing.assert_allclose(modelkit.infer(model, batch), direct(batch).numpy(), rtol=1e-5, atol=1e-6)


def test_every_batch_size_runs_on_the_one_graph_traced_at_load(tmp_path):
    model = load_model(modelkit.regressor(tmp_path / "m.h5", weight=1.0))
    closure = model.runners["serving_default"].__closure__
    (graph,) = [c.cell_contents for c in closure if isinstance(c.cell_contents, tf.types.experimental.ConcreteFunction)]
    for n in (1, 3, 7, 32):
        assert modelkit.infer(model, np.ones((n, *modelkit.SHAPE), np.float32)).shape == (n, 1)
    (spec,) = graph.structured_input_signature[0][0].values()
    assert spec.shape[0] is None  # a concrete function never retraces: the batch dimension is free


def written(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: modelkit.random_bytes(p / "bad.h5"), ""),
        (lambda p: modelkit.random_bytes(p / "bad.keras"), ""),
        (lambda p: modelkit.truncate(modelkit.regressor(p / "t.h5", weight=1.0)), ""),
        (lambda p: modelkit.truncate(modelkit.regressor(p / "t.keras", weight=1.0)), ""),
        (lambda p: written(p / "empty.h5", b""), "empty"),
        (lambda p: written(p / "x.pkl", b"x"), "unsupported file type"),
        (lambda p: p / "missing.h5", "cannot read"),
    ],
)
def test_bad_files_raise_typed_error_with_path(tmp_path, make, reason):
    path = make(tmp_path)
    with pytest.raises(ModelLoadError) as info:
        load_model(path)
    assert info.value.path == str(path)
    assert reason in info.value.reason


def test_size_cap(tmp_path):
    path = modelkit.regressor(tmp_path / "m.h5", weight=1.0)
    with pytest.raises(ModelLoadError, match="limit is 100"):
        load_model(path, max_file_bytes=100)


def test_lambda_layer_refused_in_safe_mode(tmp_path):
    import keras

    inputs = keras.Input(shape=(4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    model.save(tmp_path / "lam.keras")
    with pytest.raises(ModelLoadError):
        load_model(tmp_path / "lam.keras")
    assert load_model(tmp_path / "lam.keras", trust_code=True).signature.outputs[0].shape == (4,)


def test_shape_bomb_refused_before_warmup(tmp_path):
    import keras

    inputs = keras.Input(shape=(60000, 60000, 3))
    keras.Model(inputs, keras.layers.GlobalMaxPooling2D()(inputs)).save(tmp_path / "bomb.keras")
    with pytest.raises(ModelLoadError, match="values per row"):
        load_model(tmp_path / "bomb.keras")


def test_aligned_batch_reaches_tensorflow_without_a_copy():
    rng = np.random.default_rng(0)
    parts = [rng.random((n, 4, 4, 3), dtype=np.float32) for n in (1, 3, 2)]
    batch = aligned_concatenate(parts)
    assert batch.ctypes.data % ALIGNMENT == 0
    np.testing.assert_array_equal(batch, np.concatenate(parts))
    tensor = as_tensor(batch)
    batch[0, 0, 0, 0] = 1234.0  # shared memory: the tensor sees the write
    assert float(tensor[0, 0, 0, 0]) == 1234.0


def test_read_only_arrays_are_copied_even_when_aligned():
    raw = aligned_concatenate([np.arange(16, dtype=np.float32)])
    view = raw.view()
    view.flags.writeable = False  # a request's bytes seen through np.frombuffer are read-only
    assert view.ctypes.data % ALIGNMENT == 0
    np.testing.assert_array_equal(as_tensor(view).numpy(), np.arange(16, dtype=np.float32))


def test_unaligned_or_strided_arrays_are_copied():
    unaligned = aligned_concatenate([np.zeros(13, np.float32)])[1:].reshape(3, 4)  # 4 bytes past a boundary
    assert unaligned.ctypes.data % ALIGNMENT == 4
    for array in (unaligned, np.ones((4, 3), np.float32).T):
        tensor = as_tensor(array)  # sharing the unaligned one would abort the process
        expected = array.copy()
        array[0, 0] = 99
        np.testing.assert_array_equal(tensor.numpy(), expected)  # a copy: the write is not seen
