"""The demo model builder: files, idempotence, force, accuracy, determinism."""

from __future__ import annotations

from pathlib import Path

import cv2
import keras
import numpy as np
import pytest

from yyai.demo_models import DIGITS_MIN_ACCURACY, MANIFESTS, SAMPLE_DIGIT, build_demo_models, digits_split

pytestmark = pytest.mark.slow

APPS = ("digits", "facescore", "predictsex", "faces")
FILES = {
    "digits": ("digits_cnn.keras", "sample.png"),
    "facescore": ("facescore_cnn.h5", "facescore_small.keras", "sample.jpg"),
    "predictsex": ("predictsex_cnn.h5", "sample.jpg"),
    "faces": ("sample.jpg",),
}
COMMITTED = {"faces": ("app.toml", "handler.py")}  # besides built files, what the store gets from the repository


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict[str, str], list[str]]:
    store = tmp_path_factory.mktemp("store")
    messages: list[str] = []
    outcome = build_demo_models(store, log=messages.append)
    return store, outcome, messages


@pytest.fixture(scope="module")
def held_out() -> tuple[np.ndarray, np.ndarray]:
    _, x_test, _, y_test = digits_split()
    return x_test, y_test


def load(path: Path) -> keras.Model:
    return keras.models.load_model(path, safe_mode=True, compile=False)


def mtimes(store: Path) -> dict[str, int]:
    return {f"{app}/{name}": (store / app / name).stat().st_mtime_ns for app in APPS for name in FILES[app]}


def digits_probabilities(store: Path, x: np.ndarray) -> np.ndarray:
    return load(store / "digits" / "digits_cnn.keras")(x, training=False).numpy()


def test_builds_every_file_and_nothing_else(built):
    store, outcome, messages = built
    assert outcome == {app: "built" for app in APPS}
    for app in APPS:
        # no temporary left behind; the committed manifest (and handler) are installed beside the weights
        committed = COMMITTED.get(app, ("app.toml",))
        assert sorted(p.name for p in (store / app).iterdir()) == sorted([*FILES[app], *committed])
        for name in committed:
            assert (store / app / name).read_text() == (MANIFESTS / app / name).read_text()
    assert any(f"true label {SAMPLE_DIGIT}" in m for m in messages)
    assert any("held-out accuracy" in m for m in messages)


def test_second_call_keeps_files(built):
    store, _, _ = built
    before = mtimes(store)
    messages: list[str] = []
    assert build_demo_models(store, log=messages.append) == {app: "present" for app in APPS}
    assert mtimes(store) == before
    assert len(messages) == len(APPS)


def test_digits_model_is_accurate_and_reads_its_sample(built, held_out):
    store, _, _ = built
    x_test, y_test = held_out
    accuracy = np.mean(np.argmax(digits_probabilities(store, x_test), axis=1) == y_test)
    assert accuracy >= DIGITS_MIN_ACCURACY

    sample = cv2.imread(str(store / "digits" / "sample.png"), cv2.IMREAD_UNCHANGED)
    assert sample.shape == (28, 28) and sample.dtype == np.uint8
    assert sample.mean() < 128  # bright strokes on a dark background, like the data set
    x = (sample.astype(np.float32) * 0.00392156862745098)[np.newaxis, ..., np.newaxis]
    assert int(np.argmax(digits_probabilities(store, x))) == SAMPLE_DIGIT


def test_face_models_shapes_and_ranges(built):
    store, _, _ = built
    picture = cv2.cvtColor(cv2.imread(str(store / "facescore" / "sample.jpg")), cv2.COLOR_BGR2RGB)
    assert picture.shape == (350, 350, 3)
    rng = np.random.default_rng(0)
    batch = np.concatenate([picture[np.newaxis] / 255.0, rng.random((3, 350, 350, 3))]).astype(np.float32)
    for name in FILES["facescore"][:2]:
        scores = load(store / "facescore" / name)(batch, training=False).numpy()
        assert scores.shape == (4, 1)
        assert np.all((scores >= 1.0) & (scores <= 5.0)), name
    probabilities = load(store / "predictsex" / "predictsex_cnn.h5")(batch, training=False).numpy()
    assert probabilities.shape == (4, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_force_rebuilds_and_the_build_is_deterministic(built, held_out):
    store, _, _ = built
    x_test, _ = held_out
    before = mtimes(store)
    probabilities = digits_probabilities(store, x_test)
    samples = {
        name: (store / name).read_bytes()
        for name in ("facescore/sample.jpg", "predictsex/sample.jpg", "digits/sample.png")
    }
    assert build_demo_models(store, force=True, log=lambda _: None) == {app: "built" for app in APPS}
    after = mtimes(store)
    assert all(after[name] != before[name] for name in before)
    np.testing.assert_allclose(digits_probabilities(store, x_test), probabilities, atol=1e-6)
    assert {name: (store / name).read_bytes() for name in samples} == samples


def test_demo_answers_true_only_while_the_demos_own_weights_serve(built, tmp_path):
    import shutil

    from tests import modelkit
    from yyai.runtime.model_util import ModelUtil

    app = shutil.copytree(built[0] / "predictsex", tmp_path / "store" / "predictsex")
    util = ModelUtil(app)
    util.load()
    assert util.current.spec.demo and util.status()["demo"]
    modelkit.classifier(app / "predictsex_cnn.h5", classes=2, input_shape=(350, 350, 3))  # real weights copied in
    util.reload()
    assert not util.current.spec.demo and not util.status()["demo"]
