"""Real tiny Keras models for tests, with outputs known in closed form."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402

SHAPE = (8, 8, 1)
INPUT = "pixels"  # the input layer of every model here
OUTPUT = "y"  # the output layer of regressor(); classifier()'s is "probs"


def regressor(path: Path, *, weight: float, input_shape=SHAPE) -> Path:
    """Save a model whose output is ``weight * sum(x)``; the suffix picks .h5 or .keras."""
    inputs = keras.Input(shape=input_shape, name=INPUT)
    x = keras.layers.Flatten()(inputs)
    out = keras.layers.Dense(
        1, kernel_initializer=keras.initializers.Constant(weight), bias_initializer="zeros", name=OUTPUT
    )(x)
    return _save(keras.Model(inputs, out), path)


def wide_regressor(path: Path, *, weight: float, hidden: int = 16384) -> Path:
    """:func:`regressor`'s answer (``weight * sum(x)``) through a hidden layer of ``hidden`` units: about
    ``hidden * 65`` weights (4 MiB by default), for tests where memory matters."""
    inputs = keras.Input(shape=SHAPE, name=INPUT)
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(hidden, kernel_initializer=keras.initializers.Constant(weight / hidden))(x)
    out = keras.layers.Dense(1, kernel_initializer="ones", bias_initializer="zeros", name=OUTPUT)(x)
    return _save(keras.Model(inputs, out), path)


def classifier(
    path: Path, *, classes: int = 3, seed: int = 0, input_shape=SHAPE, activation="softmax", name: str | None = None
) -> Path:
    """Save a seeded random classifier: softmax probabilities, or raw logits with ``activation=None``; ``name``
    is the Keras model's (a demo placeholder's starts with ``DEMO_MODEL_PREFIX``)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=input_shape, name=INPUT)
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(classes, activation=activation, bias_initializer="random_normal", name="probs")(x)
    return _save(keras.Model(inputs, out, name=name), path)


def expected_regression(weight: float, batch: np.ndarray) -> np.ndarray:
    """What :func:`regressor` gives for ``batch``, shape (N, 1)."""
    return weight * batch.reshape(len(batch), -1).sum(axis=1, keepdims=True)


def random_bytes(path: Path, size: int = 4096) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(0).bytes(size))
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def _save(model, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".tmp-" + path.name)
    model.save(tmp)
    os.replace(tmp, path)
    return path


def infer(model, batch: np.ndarray) -> np.ndarray:
    """The only output of a one-input, one-output LoadedModel on ``batch`` (its served signature)."""
    from yyai.runtime.feed import Feed

    signature = model.signature
    (output,) = model.run(signature.name, Feed({signature.inputs[0].name: batch})).values()
    return output


def predict(util, batch: np.ndarray) -> tuple[str, list[np.ndarray]]:
    """Run every (one-input, one-output) model of a ModelUtil's serving version on ``batch``, through its
    batcher: (version id, one output array per model)."""
    with util.serving() as version:
        prepared = version.prepare({version.signature.inputs[0].name: batch}, columnar=True)
        outputs = version.infer(prepared)
        return version.id, [next(iter(named.values())) for named in outputs]


def png_bytes(value: int = 255, size=(8, 8), channels=1) -> bytes:
    """A uniform image; for the 'calc' app (weight 1 regressor) its prediction is known."""
    image = np.full((size[1], size[0], channels) if channels > 1 else (size[1], size[0]), value, np.uint8)
    ok, buffer = cv2.imencode(".png", image)
    assert ok
    return buffer.tobytes()
