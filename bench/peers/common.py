"""What every peer shares with our server: the app's manifest, input and output steps.

Peers decode, preprocess and format with the very same functions as aiserver
(:mod:`yyai.runtime.preprocess`, :mod:`yyai.runtime.postprocess`), so a
difference in the benchmark comes from the serving design, not from the steps.
"""

from __future__ import annotations

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


def results(
    names: list[str], outputs: list[np.ndarray], spec: AppSpec, output_shapes: list[tuple[int, ...]]
) -> list[list[dict]]:
    """Per row, one result per model (aiserver's response shape)."""
    per_model = [
        postprocess.format_results(name, out, spec=spec.output, kind=postprocess.infer_kind(spec.output, shape))
        for name, out, shape in zip(names, outputs, output_shapes)
    ]
    return [list(row) for row in zip(*per_model)]
