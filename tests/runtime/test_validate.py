"""Validation of a candidate version in a child process, with memory and time limits."""
import pytest

from tests import modelkit
from yyai.runtime.errors import ModelLoadError
from yyai.runtime.validate import validate_version


def test_good_version(tmp_path):
    modelkit.regressor(tmp_path / "v" / "m.h5", weight=1.0)
    [model] = validate_version(tmp_path / "v", app_dir=tmp_path)
    assert model["name"] == "m.h5" and model["output_shape"] == [1]


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
