"""Build the three demo model apps (weights and sample images) into a model store.

Weights and samples are not committed; ``app.toml`` manifests and handlers are. This module
writes, into ``store/<app>/``:

* ``digits``: a small CNN really trained on scikit-learn's bundled 8x8 digits
  (no download), upscaled to 28x28 gray; it must reach 95% held-out accuracy;
* ``facescore``: two placeholder regressors (seeded random weights, outputs in
  1..5) on 350x350 RGB, one legacy HDF5 and one ``.keras``;
* ``predictsex``: one placeholder two-class classifier on 350x350 RGB;
* ``faces``: no weights (its handler finds faces with OpenCV's cascade and runs
  facescore and predictsex on each); its sample is a real photo that ships in
  scikit-image (``skimage.data.astronaut()``).

Every build is seeded, so the same code gives the same models. An app whose
files all exist is left alone unless ``force``. Files are written under a
hidden temporary name and moved into place with ``os.replace``, so a server
watching the folder never sees a half-written model.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Callable

import cv2  # noqa: E402,I001
import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from yyai.runtime.manifest import MANIFEST_NAME  # first: the runtime package quiets TensorFlow's logs
from yyai.runtime.version_models import DEMO_MODEL_PREFIX

Log = Callable[[str], None]

MANIFESTS = Path(__file__).resolve().parent.parent / "model_store"  # the committed app.toml files
SEED = 0
DIGITS_SIDE = 28
DIGITS_MIN_ACCURACY = 0.95
SAMPLE_DIGIT = 7  # digits/sample.png is the first held-out image of this class
FACE_SIDE = 350


def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The digits data as model inputs: ``(x_train, x_test, y_train, y_test)``.

    Each 8x8 image (0..16) is scaled to 0..255, upscaled to 28x28 uint8 with
    bilinear interpolation, then divided by 255, exactly what the server does
    to a 28x28 gray PNG with ``scale = 1/255``. ``x`` has shape (n, 28, 28, 1),
    float32; 20% is held out, stratified, ``random_state=0``.
    """
    data = load_digits()
    pixels = np.stack([_digit_pixels(image) for image in data.images])
    x = (pixels.astype(np.float32) / 255.0)[..., np.newaxis]
    return tuple(train_test_split(x, data.target, test_size=0.2, stratify=data.target, random_state=SEED))


def build_demo_models(
    store: Path, *, force: bool = False, log: Log = print, apps: tuple[str, ...] | None = None
) -> dict[str, str]:
    """Build the demo apps (``apps``, default all) into ``store/<app>/``; return ``{app: "built" | "present"}``."""
    store = Path(store)
    outcome: dict[str, str] = {}
    for app, (files, builder) in _APPS.items():
        if apps is not None and app not in apps:
            continue
        folder = store / app
        _install_manifest(folder)
        if not force and all((folder / name).is_file() for name in files):
            log(f"{app}: present, skipped ({', '.join(files)})")
            outcome[app] = "present"
            continue
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        keras.utils.set_random_seed(SEED)  # per app: the result does not depend on which others were built
        builder(folder, log)
        log(f"{app}: built {', '.join(files)} in {time.perf_counter() - started:.1f} s")
        outcome[app] = "built"
    return outcome


def _install_manifest(folder: Path) -> None:
    """Give a store outside the repository the committed ``app.toml`` and handler (never overwrite one)."""
    for committed in [MANIFESTS / folder.name / MANIFEST_NAME, *(MANIFESTS / folder.name).glob("*.py")]:
        target = folder / committed.name
        if not target.exists() and committed.resolve() != target.resolve():
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(committed, target)


# --- digits -----------------------------------------------------------------


def _digit_pixels(image: np.ndarray) -> np.ndarray:
    """One 8x8 digit (0..16) as a 28x28 uint8 image, bright strokes on black."""
    scaled = np.round(image * (255.0 / 16.0)).astype(np.uint8)
    return cv2.resize(scaled, (DIGITS_SIDE, DIGITS_SIDE), interpolation=cv2.INTER_LINEAR)


def _digits_model() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input(shape=(DIGITS_SIDE, DIGITS_SIDE, 1)),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(48, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ],
        name="digits_cnn",
    )


def _build_digits(folder: Path, log: Log) -> None:
    x_train, x_test, y_train, y_test = digits_split()
    model = _digits_model()
    epochs, batch_size = 20, 32
    steps = epochs * -(-len(x_train) // batch_size)
    learning_rate = keras.optimizers.schedules.CosineDecay(3e-3, decay_steps=steps)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy")
    model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=0)
    predicted = np.argmax(model(x_test, training=False).numpy(), axis=1)
    accuracy = float(np.mean(predicted == y_test))
    log(f"digits: held-out accuracy {accuracy:.4f} on {len(y_test)} images ({model.count_params()} params)")
    if accuracy < DIGITS_MIN_ACCURACY:
        raise RuntimeError(f"digits model reached only {accuracy:.4f} held-out accuracy (< {DIGITS_MIN_ACCURACY})")
    _save_model(model, folder / "digits_cnn.keras")
    index = int(np.flatnonzero(y_test == SAMPLE_DIGIT)[0])
    sample = np.round(x_test[index, :, :, 0] * 255.0).astype(np.uint8)
    _save_image(sample, folder / "sample.png")
    log(f"digits: sample.png is held-out image #{index}, true label {SAMPLE_DIGIT}")


# --- placeholder face apps ---------------------------------------------------


def _face_input() -> keras.KerasTensor:
    return keras.Input(shape=(FACE_SIDE, FACE_SIDE, 3))


def _strided_features(inputs: keras.KerasTensor) -> keras.KerasTensor:
    """A cheap strided conv trunk shared by the placeholder models."""
    x = keras.layers.Conv2D(8, 5, strides=4, activation="relu")(inputs)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    return keras.layers.GlobalAveragePooling2D()(x)


def _score_head(features: keras.KerasTensor) -> keras.KerasTensor:
    """One unit mapped into 1..5."""
    x = keras.layers.Dense(1, activation="sigmoid")(features)
    return keras.layers.Rescaling(4.0, offset=1.0)(x)


def _build_facescore(folder: Path, log: Log) -> None:
    inputs = _face_input()
    _save_model(
        keras.Model(inputs, _score_head(_strided_features(inputs)), name=f"{DEMO_MODEL_PREFIX}facescore_cnn"),
        folder / "facescore_cnn.h5",
    )
    inputs = _face_input()
    x = keras.layers.AveragePooling2D(10)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalMaxPooling2D()(x)
    _save_model(
        keras.Model(inputs, _score_head(x), name=f"{DEMO_MODEL_PREFIX}facescore_small"),
        folder / "facescore_small.keras",
    )
    _save_image(_face_picture(), folder / "sample.jpg")


def _build_predictsex(folder: Path, log: Log) -> None:
    inputs = _face_input()
    outputs = keras.layers.Dense(2, activation="softmax")(_strided_features(inputs))
    _save_model(keras.Model(inputs, outputs, name=f"{DEMO_MODEL_PREFIX}predictsex_cnn"), folder / "predictsex_cnn.h5")
    _save_image(_face_picture(), folder / "sample.jpg")


def _build_faces(folder: Path, log: Log) -> None:
    from skimage.data import astronaut  # a real photo (Eileen Collins), inside the scikit-image wheel

    _save_image(cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR), folder / "sample.jpg")


def _face_picture() -> np.ndarray:
    """A synthetic, deterministic 350x350 BGR face: head, hair, eyes, nose, mouth."""
    side = FACE_SIDE
    image = np.full((side, side, 3), (235, 206, 135), np.uint8)  # light-blue background (BGR)
    centre = (side // 2, side // 2 + 10)
    cv2.ellipse(image, (centre[0], centre[1] - 30), (125, 120), 0, 180, 360, (40, 60, 90), -1, cv2.LINE_AA)
    cv2.ellipse(image, centre, (105, 135), 0, 0, 360, (160, 190, 230), -1, cv2.LINE_AA)
    for dx in (-42, 42):
        eye = (centre[0] + dx, centre[1] - 30)
        cv2.ellipse(image, eye, (20, 11), 0, 0, 360, (255, 255, 255), -1, cv2.LINE_AA)
        cv2.circle(image, eye, 7, (70, 50, 30), -1, cv2.LINE_AA)
        cv2.line(image, (eye[0] - 22, eye[1] - 24), (eye[0] + 22, eye[1] - 28), (40, 60, 90), 5, cv2.LINE_AA)
    nose = np.array([[centre[0], centre[1] - 10], [centre[0] - 12, centre[1] + 30], [centre[0] + 12, centre[1] + 30]])
    cv2.polylines(image, [nose], False, (120, 150, 200), 3, cv2.LINE_AA)
    cv2.ellipse(image, (centre[0], centre[1] + 62), (40, 18), 0, 10, 170, (60, 60, 180), 5, cv2.LINE_AA)
    return image


# --- atomic writes -----------------------------------------------------------


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Let ``write`` fill a hidden temporary file with ``path``'s suffix, then move it into place."""
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _save_model(model: keras.Model, path: Path) -> None:
    _write_atomically(path, model.save)


def _save_image(image: np.ndarray, path: Path) -> None:
    def write(temporary: Path) -> None:
        if not cv2.imwrite(str(temporary), image):
            raise OSError(f"cv2 could not write {temporary}")

    _write_atomically(path, write)


_APPS: dict[str, tuple[tuple[str, ...], Callable[[Path, Log], None]]] = {
    "digits": (("digits_cnn.keras", "sample.png"), _build_digits),
    "facescore": (("facescore_cnn.h5", "facescore_small.keras", "sample.jpg"), _build_facescore),
    "predictsex": (("predictsex_cnn.h5", "sample.jpg"), _build_predictsex),
    "faces": (("sample.jpg",), _build_faces),
}
