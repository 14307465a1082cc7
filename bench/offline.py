"""The offline limit: the models' compiled functions on pre-decoded batches, no HTTP.

This is what the server's loader builds (one ``tf.function`` per model, batch
dimension free), fed ready float32 arrays the way the batcher hands them over
(one aligned buffer, converted once for every model): no decoding, no
batching queue, no network. Run every model of the app, as a predict does.

For a handler app (workload c, ``faces``) the limit is the pipeline itself
(:func:`measure_pipeline`): the handler's own code on the photo, its calls to
other apps running their models directly on the crops.
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


def measure_pipeline(store: Path, app: str, image: bytes, *, seconds: float = 5.0) -> list[OfflineResult]:
    """Photos/s and median latency of ``app``'s handler on one photo, in this process: its ``context.predict``
    preprocesses the images as the server does and runs the other app's models on them, without HTTP, data
    plane or batcher (the answer holds no formatted results; the handler only counts them)."""
    from yyai.runtime.feed import Feed
    from yyai.runtime.handlers import HandlerRequest, HandlerSettings, load_handler
    from yyai.runtime.loader import load_model
    from yyai.runtime.manifest import load_manifest
    from yyai.runtime.preprocess import prepare_image
    from yyai.runtime.servable import feed_for

    loaded: dict[str, tuple] = {}

    def call_app(name: str, *, images, instances=None, inputs=None) -> dict:
        if name not in loaded:
            folder = store / name
            loaded[name] = (load_manifest(folder), [load_model(p) for p in sorted(folder.iterdir())
                                                    if p.suffix in (".h5", ".keras")])
        spec, models = loaded[name]
        signature = models[0].signature
        (tensor,) = signature.inputs
        feed = Feed({tensor.name: np.stack([prepare_image(i, spec=spec.input, input_shape=tensor.shape)
                                            for i in images])})
        for model in models:
            model.run(signature.name, feed_for(model, signature.name, feed))
        return {"predictions": [[] for _ in images]}

    folder = store / app
    handler = load_handler(load_manifest(folder), version="offline", folders=[folder], app_folder=folder,
                           settings=HandlerSettings(call_app=call_app))
    request = HandlerRequest(app=app, images=[image])
    for _ in range(5):  # warm-up: the detector of this thread, the models' kernels
        handler.postprocess({}, request)
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        handler.postprocess({}, request)
        times.append(time.perf_counter() - start)
    return [OfflineResult(1, len(times) / sum(times), float(np.median(times)) * 1000)]
