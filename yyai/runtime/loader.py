"""Load one model file safely, compile its inference function, warm it up.

Contract of :func:`load_model_file`:

* only ``.h5`` and ``.keras`` files are accepted, loaded with
  ``safe_mode=True, compile=False`` (no pickled Python runs, no optimizer built);
* the model must take one image-like input ``(H, W, C)`` and give one output;
* its inference function is one ``tf.function`` with the batch dimension left
  free in the input signature, so it is traced once and never again for other
  batch sizes; each model owns its function (its own graph), nothing
  process-global is touched (never ``clear_session()``, never ``model.predict()``);
* it is warmed up on zeros of its own input shape (batch 1 and batch 2, which
  covers the traced graph and the batch-size-dependent kernels);
* any failure becomes a :class:`ModelLoadError` naming the file and the reason.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from .errors import ModelLoadError

MODEL_SUFFIXES = (".h5", ".keras")
DEFAULT_MAX_FILE_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class LoadedModel:
    """One loaded, compiled and warmed-up model. Immutable once built."""

    name: str
    path: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    params: int
    load_seconds: float
    warmup_seconds: float
    infer: Callable[[np.ndarray], np.ndarray]

    def describe(self) -> dict:
        """JSON-ready description (no callables)."""
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape),
            "params": self.params,
            "load_ms": round(self.load_seconds * 1000, 1),
            "warmup_ms": round(self.warmup_seconds * 1000, 1),
        }


def load_model_file(
    path: Path,
    *,
    trust_code: bool = False,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> LoadedModel:
    """Load, compile and warm up the model at ``path``; raise ModelLoadError on any failure."""
    path = Path(path)
    if path.suffix not in MODEL_SUFFIXES:
        raise ModelLoadError(path, f"unsupported file type '{path.suffix}' (expected .h5 or .keras)")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ModelLoadError(path, f"cannot read the file: {exc.strerror}") from exc
    if size == 0:
        raise ModelLoadError(path, "the file is empty")
    if size > max_file_bytes:
        raise ModelLoadError(path, f"the file is {size} bytes; the limit is {max_file_bytes}")

    started = time.perf_counter()
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=not trust_code)
    except Exception as exc:  # keras raises many types for bad files; all mean "cannot load"
        raise ModelLoadError(path, _reason(exc)) from exc
    input_shape, output_shape = _io_shapes(path, model)
    infer = _compile(model, input_shape)
    loaded = time.perf_counter()
    try:
        for batch in (1, 2):
            out = infer(np.zeros((batch, *input_shape), dtype=np.float32))
            if out.shape != (batch, *output_shape):
                raise ModelLoadError(path, f"warm-up gave shape {out.shape}, expected {(batch, *output_shape)}")
            if not np.all(np.isfinite(out)):
                raise ModelLoadError(path, "warm-up on zeros gave non-finite outputs")
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(path, f"warm-up failed: {_reason(exc)}") from exc
    warmed = time.perf_counter()
    return LoadedModel(
        name=path.name,
        path=str(path),
        input_shape=input_shape,
        output_shape=output_shape,
        params=int(model.count_params()),
        load_seconds=loaded - started,
        warmup_seconds=warmed - loaded,
        infer=infer,
    )


def _io_shapes(path: Path, model) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The model's one input shape and one output shape, without the batch dimension."""
    inputs, outputs = model.inputs or [], model.outputs or []
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelLoadError(path, f"expected one input and one output, found {len(inputs)} and {len(outputs)}")
    input_shape = tuple(inputs[0].shape[1:])
    output_shape = tuple(outputs[0].shape[1:])
    if any(d is None for d in input_shape):
        raise ModelLoadError(path, f"input shape {input_shape} must be fully defined apart from the batch")
    if len(input_shape) not in (1, 3):
        raise ModelLoadError(path, f"input shape {input_shape} is neither (H, W, C) nor a flat vector")
    if any(d is None for d in output_shape):
        raise ModelLoadError(path, f"output shape {output_shape} must be fully defined apart from the batch")
    return tuple(int(d) for d in input_shape), tuple(int(d) for d in output_shape)


def _compile(model, input_shape: tuple[int, ...]) -> Callable[[np.ndarray], np.ndarray]:
    """One graph per model: a tf.function whose signature leaves the batch free."""
    signature = [tf.TensorSpec(shape=(None, *input_shape), dtype=tf.float32)]

    @tf.function(input_signature=signature, reduce_retracing=True)
    def graph(x):
        return model(x, training=False)

    def infer(batch: np.ndarray) -> np.ndarray:
        return graph(tf.convert_to_tensor(batch, dtype=tf.float32)).numpy()

    return infer


def _reason(exc: Exception) -> str:
    """One line a caller can read; the full traceback goes to the log, not the response."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:500]
