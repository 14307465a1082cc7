"""What every peer shares with our server: the app's manifest, input and output steps, and its models.

Peers decode, preprocess and format with the very same functions as aiserver
(:mod:`yyai.runtime.preprocess`, :mod:`yyai.runtime.postprocess`) and run the
models through the same compiled functions (:class:`App`), so a difference in
the benchmark comes from the serving design, not from the steps.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import numpy as np

from yyai.runtime import postprocess, preprocess
from yyai.runtime.manifest import AppSpec, load_manifest

MAX_BYTES = 10 * 1024 * 1024


def app_dir() -> Path:
    """The app folder a peer serves: $BENCH_APP_DIR."""
    return Path(os.environ["BENCH_APP_DIR"])


def model_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in (".h5", ".keras"))


def spec_of(folder: Path) -> AppSpec:
    return load_manifest(folder)


def to_row(image: bytes, spec: AppSpec, input_shape: tuple[int, ...]) -> np.ndarray:
    """Image bytes -> one preprocessed model input row (H, W, C)."""
    return preprocess.prepare_image(image, spec=spec.input, input_shape=input_shape)


def image_from_json(payload: dict) -> bytes:
    return preprocess.decode_base64(payload["image"], max_bytes=MAX_BYTES)


def v2_image_request(workload, shape: list[int]) -> tuple[str, bytes]:
    """A KServe v2 JSON body carrying the workload's image as base64 text in one BYTES input ``image`` of
    ``shape`` (the peers that speak v2: Triton, MLServer)."""
    text = base64.b64encode(workload.image).decode()
    body = {"inputs": [{"name": "image", "shape": shape, "datatype": "BYTES", "data": [text]}]}
    return "application/json", json.dumps(body).encode()


def v2_results(status: int, body: bytes) -> list[list[dict]]:
    """Per row, the per-model result dicts of a v2 answer whose first output holds each row's JSON
    (ValueError for any status but 200)."""
    if status != 200:
        raise ValueError(f"status {status}: {body[:200]!r}")
    return [json.loads(row) for row in json.loads(body)["outputs"][0]["data"]]


def results(
    names: list[str], outputs: list[np.ndarray], spec: AppSpec, output_shapes: list[tuple[int, ...]]
) -> list[list[dict]]:
    """Per row, one result per model (aiserver's response shape)."""
    per_model = [
        postprocess.format_results(name, out, spec=spec.output, kind=postprocess.infer_kind(spec.output, shape))
        for name, out, shape in zip(names, outputs, output_shapes)
    ]
    return [list(row) for row in zip(*per_model)]


class App:
    """The app of $BENCH_APP_DIR as every peer runs it: image bytes -> model input rows -> one batch through
    every model (the compiled function aiserver runs, one input conversion per batch) -> per row, one result
    per model."""

    def __init__(self) -> None:
        from yyai.runtime.loader import load_model

        folder = app_dir()
        self.spec = spec_of(folder)
        self.models = [load_model(f) for f in model_files(folder)]
        self.signature = self.models[0].signature
        self.names = [m.name for m in self.models]
        self.output_shapes = [m.signature.outputs[0].shape for m in self.models]

    def row(self, image: bytes) -> np.ndarray:
        return to_row(image, self.spec, self.signature.inputs[0].shape)

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """Every model's output on the batch ``x``."""
        from yyai.runtime.feed import Feed
        from yyai.runtime.servable import feed_for

        feed = Feed({self.signature.inputs[0].name: x})  # one-input models of an app may name it differently
        return [
            next(iter(m.run(self.signature.name, feed_for(m, self.signature.name, feed)).values())) for m in self.models
        ]

    def format(self, outputs: list[np.ndarray]) -> list[list[dict]]:
        return results(self.names, outputs, self.spec, self.output_shapes)

    def predict(self, images: list[bytes]) -> list[list[dict]]:
        return self.format(self.run(np.stack([self.row(image) for image in images])))


def share_cores(workers: int) -> None:
    """Give each of ``workers`` processes cores / workers TensorFlow threads, as aiserver's workers have."""
    if workers > 1:
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        os.environ.setdefault("TF_NUM_INTRAOP_THREADS", threads)
        os.environ.setdefault("TF_NUM_INTEROP_THREADS", threads)
