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

import functools
import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from aiserver import devices
from bench.models import HANDLER_WORKLOADS

ROOT = Path(__file__).resolve().parent.parent
SERVER_PY = ROOT / ".venv" / "bin" / "python"


@dataclass(frozen=True)
class OfflineResult:
    batch: int
    images_per_s: float
    ms_per_call: float  # median latency of one call on the whole batch


def measure(
    app_dir: Path, image: bytes, *, batches: tuple[int, ...] = (1, 32), seconds: float = 5.0
) -> list[OfflineResult]:
    """Images/s and median call latency of the app's models at each batch size."""
    from yyai.runtime.feed import aligned_concatenate

    app = _App(app_dir)
    row = app.row(image)
    results = []
    for size in batches:
        batch = aligned_concatenate([np.repeat(row[np.newaxis], size, axis=0)])
        # warm-up: kernels for this batch size
        results.append(_timed(functools.partial(app.run, batch), rows=size, warmup=20, seconds=seconds))
    return results


def measure_pipeline(store: Path, app: str, image: bytes, *, seconds: float = 5.0) -> list[OfflineResult]:
    """Photos/s and median latency of ``app``'s handler on one photo, in this process: its ``context.predict``
    preprocesses the images as the server does and runs the other app's models on them, without HTTP, data
    plane or batcher (the answer holds no formatted results; the handler only counts them)."""
    from yyai.runtime.handlers import HandlerRequest, HandlerSettings, load_handler
    from yyai.runtime.manifest import load_manifest

    called: dict[str, _App] = {}

    def call_app(name: str, *, images, instances=None, inputs=None) -> dict:
        if name not in called:
            called[name] = _App(store / name)
        called[name].run(np.stack([called[name].row(i) for i in images]))
        return {"predictions": [[] for _ in images]}

    folder = store / app
    handler = load_handler(
        load_manifest(folder),
        version="offline",
        folders=[folder],
        app_folder=folder,
        settings=HandlerSettings(call_app=call_app),
    )
    request = HandlerRequest(app=app, images=[image])
    # warm-up: the detector of this thread, the models' kernels
    return [_timed(lambda: handler.postprocess({}, request), rows=1, warmup=5, seconds=seconds)]


class _App:
    """An app's models as the server loads them, run on ready batches of their one (image) input."""

    def __init__(self, app_dir: Path):
        from yyai.runtime.loader import load_model
        from yyai.runtime.manifest import load_manifest

        self.spec = load_manifest(app_dir)
        self.models = [load_model(p) for p in sorted(app_dir.iterdir()) if p.suffix in (".h5", ".keras")]
        self.signature = self.models[0].signature
        (self.tensor,) = self.signature.inputs

    def row(self, image: bytes) -> np.ndarray:
        """One image preprocessed as the server does for this app."""
        from yyai.runtime.preprocess import prepare_image

        return prepare_image(image, spec=self.spec.input, input_shape=self.tensor.shape)

    def run(self, batch: np.ndarray) -> None:
        """Every model on ``batch``, converted once for all of them (as the batcher hands it over)."""
        from yyai.runtime.feed import Feed
        from yyai.runtime.servable import feed_for

        feed = Feed({self.tensor.name: batch})
        for model in self.models:
            model.run(self.signature.name, feed_for(model, self.signature.name, feed))


def _timed(call: Callable[[], object], *, rows: int, warmup: int, seconds: float) -> OfflineResult:
    """``call`` after ``warmup`` untimed calls, repeated for ``seconds``: rows/s and the median call in ms."""
    for _ in range(warmup):
        call()
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return OfflineResult(rows, len(times) * rows / sum(times), float(np.median(times)) * 1000)


def in_child(store: Path, app: str, workload: str, *, seconds: float) -> list[dict]:
    """The offline limit, measured in a child process (its TensorFlow threads and memory end with it)."""
    measure = (
        f"offline.measure_pipeline(Path({str(store)!r}), {app!r}, w.image, seconds={seconds})"
        if workload in HANDLER_WORKLOADS
        else f"offline.measure(Path({str(store / app)!r}), w.image, seconds={seconds})"
    )
    code = (
        "import json, sys; from pathlib import Path; from dataclasses import asdict; "
        "from bench import models, offline; "
        f"w = models.WORKLOADS[{workload!r}](); rows = {measure}; "
        "print(json.dumps([asdict(r) for r in rows]))"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT), **devices.onednn_env()}
    out = subprocess.run(
        [str(SERVER_PY), "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout
    rows = json.loads(out.strip().splitlines()[-1])
    for row in rows:
        print(f"   offline batch {row['batch']:<3} {row['images_per_s']:8.1f} img/s  {row['ms_per_call']:.2f} ms/call")
    return rows
