"""Hostile model files: refused on reload (old version keeps serving) and on upload (nothing kept)."""

import io
import subprocess
import sys
import zipfile

import h5py
import pytest

from tests import modelkit

pytestmark = pytest.mark.django_db

TENSOR = {"instances": [[[[1.0]] * 8] * 8]}
CUSTOM_LAYER_SCRIPT = """
import sys, keras
@keras.saving.register_keras_serializable(package="evil")
class Sneaky(keras.layers.Layer):
    def call(self, x):
        return x * 2
inputs = keras.Input(shape=(8, 8, 1))
keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Flatten()(Sneaky()(inputs)))).save(sys.argv[1])
"""


def lambda_model(path):
    import keras

    inputs = keras.Input(shape=modelkit.SHAPE)
    x = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Flatten()(x))).save(path)
    return path


def custom_layer_model(path):
    subprocess.run([sys.executable, "-c", CUSTOM_LAYER_SCRIPT, str(path)], check=True, capture_output=True)
    return path


def external_link_model(path):
    modelkit.regressor(path, weight=1.0)
    with h5py.File(path, "a") as f:
        f["model_weights"]["leak"] = h5py.ExternalLink("/etc/passwd", "/")
    return path


def shape_bomb(path):
    import keras

    inputs = keras.Input(shape=(40000, 40000, 3))
    keras.Model(inputs, keras.layers.GlobalMaxPooling2D()(inputs)).save(path)
    return path


def zip_bomb(path):
    modelkit.regressor(path.with_name("base.keras"), weight=1.0)
    with zipfile.ZipFile(path.with_name("base.keras")) as old, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as new:
        for item in old.infolist():
            new.writestr(item.filename, old.read(item.filename))
        new.writestr("padding.bin", b"\0" * (300 << 20))
    return path


HOSTILE = {
    "lambda.h5": (lambda_model, "Lambda"),
    "lambda.keras": (lambda_model, "Lambda"),
    "custom.keras": (custom_layer_model, "Sneaky"),
    "truncated.h5": (lambda p: modelkit.truncate(modelkit.regressor(p, weight=1.0)), "truncated.h5"),
    "random.h5": (lambda p: modelkit.random_bytes(p), "random.h5"),
    "random.keras": (lambda p: modelkit.random_bytes(p), "random.keras"),
    "external.h5": (external_link_model, "external link"),
    "bomb.keras": (shape_bomb, "values per row"),
    "zipbomb.keras": (zip_bomb, "unpacks to"),
}


@pytest.fixture
def small_file_cap(settings, yyai):
    yyai.MAX_MODEL_FILE_BYTES = 100 << 20  # the zip bomb unpacks past it; real models stay far below


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_reload_refuses_and_keeps_serving(store, client, staff_client, tmp_path, name, small_file_cap):
    from yyai.fleet import process_registry

    process_registry.get_registry().get("calc").max_file_bytes = 100 << 20
    before = client.post("/api/apps/calc/predict/", TENSOR, format="json").json()
    build, words = HOSTILE[name]
    build(store / "calc" / name)
    response = staff_client.post("/api/apps/calc/reload/")
    assert response.status_code == 422, response.content
    body = response.json()
    assert body["code"] == "model_load_failed" and words in body["error"], body["error"]
    after = client.post("/api/apps/calc/predict/", TENSOR, format="json").json()
    assert (after["version"], after["result"] if "result" in after else after["predictions"]) == (
        before["version"],
        before["predictions"],
    )
    assert client.get("/api/apps/calc/").json()["last_error"]


@pytest.mark.parametrize("name", ["lambda.h5", "custom.keras", "external.h5", "bomb.keras"])
def test_upload_refuses_and_keeps_nothing(store, staff_client, tmp_path, name):
    build, words = HOSTILE[name]
    data = io.BytesIO(build(tmp_path / name).read_bytes())
    data.name = name
    response = staff_client.post("/api/apps/calc/versions/", {"files": [data]}, format="multipart")
    assert response.status_code == 400 and words in response.json()["error"], response.content
    assert not any(p.name.isdigit() or p.name.startswith(".staging") for p in (store / "calc").iterdir())


def test_trust_code_admits_lambda(store, client, staff_client):
    lambda_model(store / "calc" / "lambda.keras")
    (store / "calc" / "app.toml").write_text('trust_code = true\n[input]\ncolor = "gray"\n')
    assert staff_client.post("/api/apps/calc/reload/").status_code == 200
