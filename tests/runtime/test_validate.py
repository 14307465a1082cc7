"""Validation of a candidate version in a child process, with memory and time limits."""

import subprocess

import pytest

from tests import modelkit
from yyai.runtime.errors import InputError, ModelLoadError
from yyai.runtime.model_util import ModelUtil
from yyai.runtime.publish import UPLOADED_MARKER, check_uploaded_manifest, stage_version
from yyai.runtime.validate import validate_version


def test_good_version(tmp_path):
    modelkit.regressor(tmp_path / "v" / "m.h5", weight=1.0)
    [model] = validate_version(tmp_path / "v", app_dir=tmp_path)
    assert model["name"] == "m.h5" and model["outputs"] == [{"name": "y", "dtype": "float32", "shape": [None, 1]}]


def test_corrupt_file_named_in_error(tmp_path):
    modelkit.random_bytes(tmp_path / "v" / "bad.keras")
    with pytest.raises(ModelLoadError) as info:
        validate_version(tmp_path / "v", app_dir=tmp_path)
    assert info.value.path == "bad.keras"


def test_timeout_stops_the_child(tmp_path):
    modelkit.regressor(tmp_path / "v" / "m.h5", weight=1.0)
    with pytest.raises(ModelLoadError, match="longer than 0.5 s"):
        validate_version(tmp_path / "v", app_dir=tmp_path, timeout=0.5)


def test_memory_limit_refuses(tmp_path):
    modelkit.regressor(tmp_path / "v" / "m.h5", weight=1.0)
    with pytest.raises(ModelLoadError, match="validation"):
        validate_version(tmp_path / "v", app_dir=tmp_path, memory_bytes=256 << 20)


def test_empty_version(tmp_path):
    (tmp_path / "v").mkdir()
    with pytest.raises(ModelLoadError, match="no model files"):
        validate_version(tmp_path / "v", app_dir=tmp_path, isolated=False)


def lambda_model(path):
    import keras

    path.parent.mkdir(parents=True, exist_ok=True)
    inputs = keras.Input(shape=(4,))
    keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs)).save(path)
    return path


def test_the_child_gets_no_secrets_and_ignores_python_variables(tmp_path, monkeypatch):
    modelkit.regressor(tmp_path / "v" / "m.h5", weight=1.0)
    monkeypatch.setenv("DJANGO_SECRET_KEY", "s3cret")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:pw@db/x")
    monkeypatch.setenv("PYTHONPATH", "/somewhere/evil")
    seen = {}
    real = subprocess.run

    def spy(args, **kwargs):
        seen.update(args=args, env=kwargs["env"])
        return real(args, **kwargs)

    monkeypatch.setattr(subprocess, "run", spy)
    [model] = validate_version(tmp_path / "v", app_dir=tmp_path)
    assert model["name"] == "m.h5"
    assert {"-E", "-s"} <= set(seen["args"])
    assert not {"DJANGO_SECRET_KEY", "DATABASE_URL", "PYTHONPATH"} & set(seen["env"])
    assert "PATH" in seen["env"]


def test_an_upload_is_validated_in_safe_mode_even_where_the_app_trusts_code(tmp_path):
    (tmp_path / "app.toml").write_text("trust_code = true\n")  # the operator's own manifest
    lambda_model(tmp_path / "v" / "lam.keras")
    with pytest.raises(ModelLoadError):
        validate_version(tmp_path / "v", app_dir=tmp_path, isolated=False)


def test_an_uploaded_version_never_runs_code(tmp_path):
    app = tmp_path / "app"
    (app / "1").mkdir(parents=True)
    (app / "app.toml").write_text("trust_code = true\n")
    lambda_model(app / "1" / "lam.keras")
    (app / "1" / "READY").touch()
    assert ModelUtil(app, settle_seconds=0).reload().new_version == "1"  # the operator's disk: trusted
    (app / "1" / UPLOADED_MARKER).touch()
    with pytest.raises(ModelLoadError):
        ModelUtil(app, settle_seconds=0).reload()


def test_an_uploaded_manifest_cannot_enable_code(tmp_path):
    modelkit.regressor(tmp_path / "m.h5", weight=1.0)
    with pytest.raises(InputError, match="trust_code"):
        with open(tmp_path / "m.h5", "rb") as model:
            stage_version(tmp_path / "app", [("m.h5", model)], b"trust_code = true\n")
    assert not (tmp_path / "app").exists(), "refused before anything was written"
    check_uploaded_manifest(b"trust_code = false\n")
    with pytest.raises(InputError, match="not valid TOML"):
        check_uploaded_manifest(b"trust_code = ")
