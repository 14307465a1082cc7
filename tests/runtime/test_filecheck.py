"""Model files that reach outside themselves or explode are refused before Keras opens them."""

import io
import zipfile

import h5py
import numpy as np
import pytest

from tests import modelkit
from yyai.runtime.errors import ModelLoadError
from yyai.runtime.filecheck import check_model_file
from yyai.runtime.loader import load_model

BIG = 1 << 30


def test_real_models_pass(tmp_path):
    for name in ("m.h5", "m.keras"):
        check_model_file(modelkit.regressor(tmp_path / name, weight=1.0), max_bytes=BIG)


def hostile_h5(path, kind):
    (path.parent / "secret.h5").write_bytes(b"")
    with h5py.File(path.parent / "other.h5", "w") as other:
        other["data"] = np.arange(4.0)
    with h5py.File(path, "w") as f:
        group = f.create_group("model_weights")
        if kind == "external_link":
            group["w"] = h5py.ExternalLink("/etc/passwd", "/")
        elif kind == "external_dataset":
            (path.parent / "raw.bin").write_bytes(b"\0" * 32)
            group.create_dataset("w", shape=(4,), dtype="f8", external=[(str(path.parent / "raw.bin"), 0, 32)])
        elif kind == "virtual":
            layout = h5py.VirtualLayout(shape=(4,), dtype="f8")
            layout[:] = h5py.VirtualSource(str(path.parent / "other.h5"), "data", shape=(4,))
            group.create_virtual_dataset("w", layout)
    return path


@pytest.mark.parametrize(
    "kind, words",
    [
        ("external_link", "external link"),
        ("external_dataset", "external files"),
        ("virtual", "virtual"),
    ],
)
def test_hdf5_reaching_outside_is_refused(tmp_path, kind, words):
    path = hostile_h5(tmp_path / "bad.h5", kind)
    with pytest.raises(ModelLoadError, match=words):
        check_model_file(path, max_bytes=BIG)
    with pytest.raises(ModelLoadError, match=words):
        load_model(path)


def rewrite_archive(source, target, *, replace=None, extra=None):
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as new:
        for item in old.infolist():
            data = old.read(item.filename)
            new.writestr(item.filename, (replace or {}).get(item.filename, data))
        for name, data in (extra or {}).items():
            new.writestr(name, data)
    return target


def test_keras_archive_with_hostile_weights(tmp_path):
    good = modelkit.regressor(tmp_path / "good.keras", weight=1.0)
    weights = hostile_h5(tmp_path / "w.h5", "external_link").read_bytes()
    bad = rewrite_archive(good, tmp_path / "bad.keras", replace={"model.weights.h5": weights})
    with pytest.raises(ModelLoadError, match="external link"):
        check_model_file(bad, max_bytes=BIG)


def test_keras_archive_with_unsafe_member(tmp_path):
    good = modelkit.regressor(tmp_path / "good.keras", weight=1.0)
    bad = rewrite_archive(good, tmp_path / "bad.keras", extra={"../../escape.txt": b"x"})
    with pytest.raises(ModelLoadError, match="unsafe path"):
        check_model_file(bad, max_bytes=BIG)


def test_zip_bomb_refused(tmp_path):
    good = modelkit.regressor(tmp_path / "good.keras", weight=1.0)
    bomb = rewrite_archive(good, tmp_path / "bomb.keras", extra={"pad.bin": b"\0" * (1 << 20)})
    assert bomb.stat().st_size < 100_000  # compresses to almost nothing
    with pytest.raises(ModelLoadError, match="unpacks to"):
        check_model_file(bomb, max_bytes=512 * 1024)


def test_not_an_archive(tmp_path):
    path = tmp_path / "x.keras"
    path.write_bytes(io.BytesIO(b"PK\x03\x04 broken").getvalue())
    with pytest.raises(ModelLoadError, match="not a valid .keras"):
        check_model_file(path, max_bytes=BIG)
