"""The offline limit: the models' compiled functions on pre-decoded batches, no HTTP.

This is what the server's loader builds (one ``tf.function`` per model, batch
dimension free), fed ready float32 arrays the way the batcher hands them over
(one aligned buffer, converted once for every model): no decoding, no
batching queue, no network. Run every model of the app, as a predict does.
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
    from yyai.runtime.feed import Feed, aligned_concatenate
    from yyai.runtime.loader import load_model
    from yyai.runtime.manifest import load_manifest
    from yyai.runtime.preprocess import prepare_image
    from yyai.runtime.servable import feed_for

    spec = load_manifest(app_dir)
    models = [load_model(p) for p in sorted(app_dir.iterdir()) if p.suffix in (".h5", ".keras")]
    signature = models[0].signature
    (tensor,) = signature.inputs
    row = prepare_image(image, spec=spec.input, input_shape=tensor.shape)

    def call(batch: np.ndarray) -> None:
        feed = Feed({tensor.name: batch})
        for model in models:
            model.run(signature.name, feed_for(model, signature.name, feed))

    results = []
    for size in batches:
        batch = aligned_concatenate([np.repeat(row[np.newaxis], size, axis=0)])
        for _ in range(20):  # warm-up: kernels for this batch size
            call(batch)
        times = []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            start = time.perf_counter()
            call(batch)
            times.append(time.perf_counter() - start)
        total = sum(times)
        results.append(OfflineResult(size, len(times) * size / total, float(np.median(times)) * 1000))
    return results
