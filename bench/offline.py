"""The offline limit: the models' compiled functions on pre-decoded batches, no HTTP.

This is what the server's loader builds (one ``tf.function`` per model, batch
dimension free), fed ready float32 arrays: no decoding, no batching queue, no
network. Run every model of the app, as a predict does.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class OfflineResult:
    batch: int
    images_per_s: float
    ms_per_call: float  # median latency of one call on the whole batch


def measure(app_dir: Path, image: bytes, *, batches: tuple[int, ...] = (1, 32), seconds: float = 5.0
            ) -> list[OfflineResult]:
    """Images/s and median call latency of the app's models at each batch size."""
    from yyai.runtime.loader import load_model_file
    from yyai.runtime.manifest import load_manifest
    from yyai.runtime.preprocess import prepare_image

    spec = load_manifest(app_dir)
    models = [load_model_file(p) for p in sorted(app_dir.iterdir()) if p.suffix in (".h5", ".keras")]
    row = prepare_image(image, spec=spec.input, input_shape=models[0].input_shape)
    results = []
    for size in batches:
        batch = np.repeat(row[np.newaxis], size, axis=0)
        for _ in range(20):  # warm-up: kernels for this batch size
            for model in models:
                model.infer(batch)
        times = []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            start = time.perf_counter()
            for model in models:
                model.infer(batch)
            times.append(time.perf_counter() - start)
        total = sum(times)
        results.append(OfflineResult(size, len(times) * size / total, float(np.median(times)) * 1000))
    return results
