"""SavedModel folders inside a version are models, served through their serving_default signature."""

import os
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import modelkit
from yyai.runtime.errors import ModelLoadError
from yyai.runtime.loader import load_model
from yyai.runtime.model_util import ModelUtil
from yyai.runtime.source import scan_versions


def exported(folder, *, weight: float, how: str = "export"):
    """A SavedModel of the weight-``weight`` regressor, by Keras ``model.export()`` or ``tf.saved_model.save``."""
    model = keras.models.load_model(modelkit.regressor(folder.parent / f".src-{folder.name}.keras", weight=weight))
    if how == "export":
        model.export(str(folder), verbose=False)
    else:
        tf.saved_model.save(model, str(folder))
    return folder


@pytest.mark.parametrize("how", ["export", "save"])
def test_loads_a_saved_model_like_a_keras_file(tmp_path, how):
    model = load_model(exported(tmp_path / "sm", weight=0.5, how=how))
    batch = np.random.default_rng(1).random((4, *modelkit.SHAPE), dtype=np.float32)
    np.testing.assert_allclose(modelkit.infer(model, batch), modelkit.expected_regression(0.5, batch), rtol=1e-5)
    (inp,), (out,) = model.signature.inputs, model.signature.outputs
    assert (model.name, model.fmt, inp.shape, out.shape, model.params) == (
        "sm",
        "saved_model",
        modelkit.SHAPE,
        (1,),
        65,
    )


def test_a_folder_without_saved_model_pb_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="not a SavedModel"):
        load_model(tmp_path / "empty")


def test_a_corrupt_saved_model_is_a_load_error(tmp_path):
    folder = exported(tmp_path / "sm", weight=1.0)
    (folder / "saved_model.pb").write_bytes(b"not a protobuf")
    with pytest.raises(ModelLoadError):
        load_model(folder)


def test_a_saved_model_without_signatures_is_refused(tmp_path):
    module = tf.Module()
    module.v = tf.Variable(1.0)
    tf.saved_model.save(module, str(tmp_path / "bare"))
    with pytest.raises(ModelLoadError, match="no signature"):
        load_model(tmp_path / "bare")


def test_source_finds_saved_models_next_to_files_and_hashes_their_contents(tmp_path):
    app = tmp_path / "app"
    modelkit.regressor(app / "a.h5", weight=1.0)
    exported(app / "b", weight=2.0)
    (app / "notes").mkdir()  # a folder without saved_model.pb is not a model
    (version,) = scan_versions(app)
    assert [os.path.basename(f) for f in version.files] == ["a.h5", "b"]
    variables = next((app / "b" / "variables").iterdir())
    variables.write_bytes(variables.read_bytes()[::-1])
    (changed,) = scan_versions(app)
    assert changed.id != version.id


def test_numbered_version_settles_on_files_inside_the_saved_model(tmp_path):
    app = tmp_path / "app"
    exported(app / "1" / "sm", weight=1.0)
    old = time.time() - 60
    for path in [*(app / "1").rglob("*"), app / "1"]:
        os.utime(path, (old, old))
    assert scan_versions(app, settle_seconds=5)[0].complete
    (app / "1" / "sm" / "variables" / "extra").write_bytes(b"x")  # still being copied
    assert not scan_versions(app, settle_seconds=5)[0].complete


def test_model_util_serves_a_saved_model_with_a_keras_file(tmp_path):
    app = tmp_path / "app"
    modelkit.regressor(app / "a.h5", weight=1.0)
    exported(app / "b", weight=2.0)
    util = ModelUtil(app, settle_seconds=0)
    util.load()
    batch = np.ones((2, *modelkit.SHAPE), np.float32)
    _, outputs = modelkit.predict(util, batch)
    np.testing.assert_allclose(outputs[0], modelkit.expected_regression(1.0, batch), rtol=1e-5)
    np.testing.assert_allclose(outputs[1], modelkit.expected_regression(2.0, batch), rtol=1e-5)
    assert [m["name"] for m in util.status()["models"]] == ["a.h5", "b"]
