"""export_savedmodel writes TF Serving's layout; the SavedModel answers like this server, and serves here too."""

import numpy as np
import pytest
import tensorflow as tf
from django.core.management import CommandError, call_command

from tests import modelkit
from tests.compat.conftest import ONES
from yyai.runtime.model_util import ModelUtil

pytestmark = pytest.mark.django_db


def test_exports_every_model_behind_one_signature(store, tmp_path):
    call_command("export_savedmodel", "calc", "--output", str(tmp_path / "out"))
    folder = tmp_path / "out" / "calc" / "1"
    assert (folder / "saved_model.pb").is_file()
    signature = tf.saved_model.load(str(folder)).signatures["serving_default"]
    outputs = signature(pixels=tf.constant(ONES))  # the app's input, its outputs under the served names
    np.testing.assert_allclose(outputs["a"].numpy(), [[64.0]])
    np.testing.assert_allclose(outputs["b"].numpy(), [[128.0]])
    with pytest.raises(CommandError, match="exists"):
        call_command("export_savedmodel", "calc", "--output", str(tmp_path / "out"))
    call_command("export_savedmodel", "calc", "--output", str(tmp_path / "out"), "--force", "--number", "7")
    assert (tmp_path / "out" / "calc" / "7" / "saved_model.pb").is_file()


def test_a_one_model_export_is_served_by_this_server(store, tmp_path):
    call_command("export_savedmodel", "cls", "--output", str(tmp_path / "out"))
    app = tmp_path / "again"
    (tmp_path / "out" / "cls" / "1").rename(app)  # the TF Serving version folder is itself a SavedModel
    (tmp_path / "store" / "exported").mkdir(parents=True)
    (app).rename(tmp_path / "store" / "exported" / "cls")  # ... placed inside a flat app as one model
    util = ModelUtil(tmp_path / "store" / "exported", settle_seconds=0)
    util.load()
    reference = ModelUtil(store / "cls", settle_seconds=0)
    reference.load()
    batch = np.random.default_rng(0).random((3, *modelkit.SHAPE), dtype=np.float32)
    np.testing.assert_allclose(
        modelkit.predict(util, batch)[1][0], modelkit.predict(reference, batch)[1][0], rtol=1e-5, atol=1e-6
    )


def test_unknown_app(store, tmp_path):
    with pytest.raises(CommandError, match="no model app"):
        call_command("export_savedmodel", "nope", "--output", str(tmp_path))


def test_an_app_of_only_a_handler_has_nothing_to_export(faces_store, tmp_path):
    with pytest.raises(CommandError, match="app 'faces' has only a handler: there is no model to export"):
        call_command("export_savedmodel", "faces", "--output", str(tmp_path))
    assert not (tmp_path / "faces").exists()
