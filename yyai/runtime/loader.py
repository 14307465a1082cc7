"""Load one model file safely, compile its inference function, warm it up.

Contract of :func:`load_model_file`:

* only ``.h5`` and ``.keras`` files are accepted, loaded with
  ``safe_mode=True, compile=False`` (no pickled Python runs, no optimizer built),
  and SavedModel folders (``saved_model.pb`` inside, from ``tf.saved_model.save``
  or Keras ``model.export()``), served through their ``serving_default``
  signature (a graph: no Python of the model runs);
* the model must take one input ``(H, W, C)`` or ``(D,)`` and give one output;
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

from .batching import ALIGNMENT
from .errors import ModelLoadError
from .filecheck import check_model_file

MODEL_SUFFIXES = (".h5", ".keras")
SAVED_MODEL_FILE = "saved_model.pb"
SERVING_SIGNATURE = "serving_default"
DEFAULT_MAX_FILE_BYTES = 2 * 1024**3
MAX_ROW_ELEMENTS = 1 << 25  # 32 Mi float32 values (128 MiB) per input or output row


def is_model_path(path: Path) -> bool:
    """A model file (by suffix) or a SavedModel folder; hidden names never count."""
    if path.name.startswith("."):
        return False
    if path.is_dir():
        return (path / SAVED_MODEL_FILE).is_file()
    return path.is_file() and path.suffix in MODEL_SUFFIXES


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
    infer: Callable[[np.ndarray | tf.Tensor], np.ndarray]  # a float32 batch (N, *input_shape) -> (N, *output_shape)

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


def as_tensor(batch: np.ndarray) -> tf.Tensor:
    """``batch`` as a float32 tensor, without a copy when the array allows it.

    A C-contiguous float32 array aligned to ALIGNMENT bytes (what the
    batcher builds) is shared with TensorFlow through DLPack; anything else is
    copied by ``tf.convert_to_tensor`` (15 ms per 47 MB, with the GIL held).
    An unaligned array must never be shared: TensorFlow aborts the process.
    """
    if (batch.dtype == np.float32 and batch.flags.c_contiguous and batch.size
            and batch.ctypes.data % ALIGNMENT == 0):
        return tf.experimental.dlpack.from_dlpack(batch.__dlpack__())
    return tf.convert_to_tensor(batch, dtype=tf.float32)


def load_model_file(
    path: Path,
    *,
    trust_code: bool = False,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> LoadedModel:
    """Load, compile and warm up the model at ``path``; raise ModelLoadError on any failure."""
    path = Path(path)
    saved_model = path.is_dir()
    if saved_model and not (path / SAVED_MODEL_FILE).is_file():
        raise ModelLoadError(path, f"the folder has no {SAVED_MODEL_FILE}; it is not a SavedModel")
    if not saved_model and path.suffix not in MODEL_SUFFIXES:
        raise ModelLoadError(path, f"unsupported file type '{path.suffix}' (expected .h5 or .keras)")
    try:
        size = _size(path)
    except OSError as exc:
        raise ModelLoadError(path, f"cannot read the file: {exc.strerror}") from exc
    if size == 0:
        raise ModelLoadError(path, "the file is empty")
    if size > max_file_bytes:
        raise ModelLoadError(path, f"the file is {size} bytes; the limit is {max_file_bytes}")
    check_model_file(path, max_bytes=max_file_bytes)

    started = time.perf_counter()
    if saved_model:
        input_shape, output_shape, params, infer = _open_saved_model(path)
    else:
        try:
            model = keras.models.load_model(path, compile=False, safe_mode=not trust_code)
        except Exception as exc:  # keras raises many types for bad files; all mean "cannot load"
            raise ModelLoadError(path, _reason(exc)) from exc
        input_shape, output_shape = _io_shapes(path, model.inputs, model.outputs)
        params, infer = int(model.count_params()), _compile(model, input_shape)
    _check_row_size(path, input_shape, output_shape)
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
        params=params,
        load_seconds=loaded - started,
        warmup_seconds=warmed - loaded,
        infer=infer,
    )


def _io_shapes(path: Path, inputs, outputs) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The model's one input shape and one output shape, without the batch dimension."""
    inputs, outputs = inputs or [], outputs or []
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


def _check_row_size(path: Path, input_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> None:
    """Refuse shape bombs: a row so large that warm-up alone would exhaust memory."""
    for what, shape in (("input", input_shape), ("output", output_shape)):
        elements = int(np.prod(shape, dtype=np.int64))
        if elements > MAX_ROW_ELEMENTS:
            raise ModelLoadError(path, f"{what} shape {shape} has {elements} values per row; "
                                       f"the limit is {MAX_ROW_ELEMENTS}")


def _compile(model, input_shape: tuple[int, ...]) -> Callable[[np.ndarray], np.ndarray]:
    """One graph per model: a tf.function whose signature leaves the batch free."""
    signature = [tf.TensorSpec(shape=(None, *input_shape), dtype=tf.float32)]

    @tf.function(input_signature=signature, reduce_retracing=True)
    def graph(x):
        return model(x, training=False)

    def infer(batch: np.ndarray) -> np.ndarray:
        return graph(tf.convert_to_tensor(batch, dtype=tf.float32)).numpy()

    return infer


def _open_saved_model(path: Path) -> tuple[tuple[int, ...], tuple[int, ...], int, Callable]:
    """Shapes, parameter count and inference function of a SavedModel's serving_default signature.

    The signature is already a concrete graph with a free batch dimension; the
    batch is cast to the signature's input dtype.
    """
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:
        raise ModelLoadError(path, f"not a loadable SavedModel: {_reason(exc)}") from exc
    signature = getattr(loaded, "signatures", {}).get(SERVING_SIGNATURE)
    if signature is None:
        raise ModelLoadError(path, f"the SavedModel has no '{SERVING_SIGNATURE}' signature")
    specs = signature.structured_input_signature[1]
    if len(signature.structured_input_signature[0]) or len(specs) != 1 or len(signature.structured_outputs) != 1:
        raise ModelLoadError(path, f"expected one input and one output, found {len(specs)} and "
                                   f"{len(signature.structured_outputs)}")
    (in_name, in_spec), = specs.items()
    (out_name, out_spec), = signature.structured_outputs.items()
    if not in_spec.dtype.is_floating and not in_spec.dtype.is_integer:
        raise ModelLoadError(path, f"input '{in_name}' has dtype {in_spec.dtype.name}; only numbers are supported")
    input_shape, output_shape = _io_shapes(path, [in_spec], [out_spec])
    params = sum(int(np.prod(v.shape)) for v in signature.variables)

    def infer(batch: np.ndarray) -> np.ndarray:
        x = tf.cast(tf.convert_to_tensor(batch, dtype=tf.float32), in_spec.dtype)
        return signature(**{in_name: x})[out_name].numpy()

    infer.loaded = loaded  # keep the trackable (and its variables) alive with the function
    return input_shape, output_shape, params, infer


def _size(path: Path) -> int:
    """Bytes of a model file, or of every file in a SavedModel folder."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _reason(exc: Exception) -> str:
    """One line a caller can read; the full traceback goes to the log, not the response.

    Keras puts the useful part (the class it could not locate) at the end of
    long messages, so a long one keeps its head and its tail.
    """
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 600 else f"{text[:200]} ... {text[-380:]}"
