"""The benchmark's model store and request payloads, built deterministically.

* ``gray64`` (workload a): a seeded 64x64x1 CNN, about 60k parameters, softmax
  over 10 classes; the request is one gray 64x64 PNG as base64 in JSON.
* ``facescore`` (workload b): the demo app (two regressors on 350x350 RGB),
  built by :func:`yyai.demo_models.build_demo_models`; the request is a
  350x350 RGB JPEG as a multipart upload.
* ``faces`` (workload c): the demo pipeline (a handler: OpenCV's face detector,
  then facescore and predictsex on each face); the request is its sample, the
  512x512 astronaut photo with one face, as a multipart upload.

Every server in the benchmark (ours and the peers) loads its model from this
store, so they all run the very same weights.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

GRAY_APP = "gray64"
FACE_APP = "facescore"
FACES_APP = "faces"
GRAY_SIDE = 64
FACE_SIDE = 350
BOUNDARY = "benchboundary7MA4YWxkTrZu0gW"


@dataclass(frozen=True)
class Workload:
    """One benchmark workload: which app, and the exact HTTP body every request sends."""

    key: str  # a, b or c
    name: str
    app: str
    content_type: str
    body: bytes
    image: bytes  # the raw image file inside the body


def build_store(store: Path, *, with_face: bool = True) -> Path:
    """Build ``gray64`` (and ``facescore``, ``predictsex`` and ``faces`` if asked) into ``store``; existing files
    are kept."""
    store.mkdir(parents=True, exist_ok=True)
    gray = store / GRAY_APP
    if not (gray / "cnn.keras").exists():
        gray.mkdir(exist_ok=True)
        gray_model().save(gray / ".cnn.tmp.keras")
        os.replace(gray / ".cnn.tmp.keras", gray / "cnn.keras")
    (gray / "app.toml").write_text(
        'description = "benchmark: seeded 64x64 gray CNN, 10 classes"\n'
        '[input]\ncolor = "gray"\nscale = 0.00392156862745098\n'
        '[output]\nkind = "classification"\n'
    )
    if with_face:
        from yyai.demo_models import build_demo_models

        build_demo_models(store, log=lambda _msg: None, apps=(FACE_APP, "predictsex", FACES_APP))
    return store


def gray_model():
    """The workload-a model: Conv16-Conv32-Conv64 with pooling, Dense16, softmax 10 (seeded)."""
    import keras

    keras.utils.set_random_seed(0)
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(GRAY_SIDE, GRAY_SIDE, 1)),
            layers.Conv2D(16, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(16, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ],
        name="gray64_cnn",
    )


def gray_image() -> bytes:
    """A deterministic 64x64 gray PNG (a smooth pattern with some noise)."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:GRAY_SIDE, 0:GRAY_SIDE]
    pattern = 127 + 80 * np.sin(x / 7.0) * np.cos(y / 5.0) + rng.normal(0, 12, (GRAY_SIDE, GRAY_SIDE))
    ok, data = cv2.imencode(".png", np.clip(pattern, 0, 255).astype(np.uint8))
    assert ok
    return data.tobytes()


def face_image() -> bytes:
    """A deterministic 350x350 RGB JPEG (quality 90)."""
    rng = np.random.default_rng(2)
    y, x = np.mgrid[0:FACE_SIDE, 0:FACE_SIDE]
    base = np.stack([128 + 100 * np.sin(x / 30.0), 128 + 100 * np.cos(y / 25.0), 128 + 60 * np.sin((x + y) / 40.0)], -1)
    image = np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return data.tobytes()


def astronaut_photo() -> bytes:
    """The faces demo's sample: scikit-image's astronaut photo as a JPEG (quality 95)."""
    from skimage.data import astronaut

    ok, data = cv2.imencode(".jpg", cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return data.tobytes()


def _multipart(image: bytes, filename: str) -> bytes:
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="img"; filename="{filename}"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + image
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


def workload_a() -> Workload:
    image = gray_image()
    body = json.dumps({"image": base64.b64encode(image).decode()}).encode()
    return Workload("a", "a: gray64 base64 JSON", GRAY_APP, "application/json", body, image)


def workload_b() -> Workload:
    image = face_image()
    return Workload(
        "b",
        "b: facescore JPEG multipart",
        FACE_APP,
        f"multipart/form-data; boundary={BOUNDARY}",
        _multipart(image, "face.jpg"),
        image,
    )


def workload_c() -> Workload:
    image = astronaut_photo()
    return Workload(
        "c",
        "c: faces pipeline, photo multipart",
        FACES_APP,
        f"multipart/form-data; boundary={BOUNDARY}",
        _multipart(image, "astronaut.jpg"),
        image,
    )


WORKLOADS = {"a": workload_a, "b": workload_b, "c": workload_c}
HANDLER_WORKLOADS = {"c"}  # served by a handler: only aiserver has one, and the offline limit is the pipeline
