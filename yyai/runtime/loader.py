"""Load one model safely, pick the signature it serves, warm it up.

Contract of :func:`load_model`:

* a model is a ``.h5`` / ``.keras`` file (:mod:`keras_models`) or a SavedModel
  folder (:mod:`saved_models`); its size is capped and its files are inspected
  (:mod:`filecheck`) before any loader opens them;
* it serves one signature (``signature``, else ``serving_default``, else its
  only one); every other signature stays callable by name;
* shape bombs (a row of more than MAX_ROW_ELEMENTS values) are refused;
* it is warmed up on zeros of its own input specs (batch 1 and batch 2 when the
  signature is batched, which covers the traced graph and the batch-size
  dependent kernels). A signature whose outputs do not follow the batch is
  served unbatched. Inputs that zeros may not fit (strings, free dimensions
  other than the batch) are warmed up best effort: a failure there is logged,
  since the synthetic input, not the model, may be at fault;
* nothing process-global is touched (never ``clear_session()``, never
  ``model.predict()``);
* any failure becomes a :class:`ModelLoadError` naming the file and the reason.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import tensorflow as tf

from .errors import ModelLoadError, ModelRejectedInput
from .feed import Feed
from .filecheck import check_model_file
from .keras_models import open_keras
from .limits import DEFAULT_MAX_FILE_BYTES
from .opened import Runner, reason_of, refusal_of
from .saved_models import SAVED_MODEL_FILE, open_saved_model
from .signature import Signature, TensorSpec, pick_signature

log = logging.getLogger(__name__)

MODEL_SUFFIXES = (".h5", ".keras")
MAX_ROW_ELEMENTS = 1 << 25  # 32 Mi values (128 MiB of float32) per input or output row
WARMUP_FREE_DIM = 32  # the length warm-up gives a dimension of any length
# what TensorFlow raises when the values it runs on are wrong (an index out of range, undecodable bytes): the
# caller's error, not the server's
REFUSALS = (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError)


def is_model_path(path: Path) -> bool:
    """A model file (by suffix) or a SavedModel folder; hidden names never count."""
    if path.name.startswith("."):
        return False
    if path.is_dir():
        return (path / SAVED_MODEL_FILE).is_file()
    return path.is_file() and path.suffix in MODEL_SUFFIXES


@dataclass(frozen=True)
class LoadedModel:
    """One loaded, warmed-up model. Immutable once built; :meth:`close` when its version retires."""

    name: str
    path: str
    fmt: str  # keras | saved_model | tf1_session
    signature: Signature  # the one the app serves
    signatures: dict[str, Signature]
    params: int
    load_seconds: float
    warmup_seconds: float
    runners: dict[str, Runner]
    release: Callable[[], None]
    keep: object = None
    distributions: frozenset[str] = frozenset()  # outputs whose warm-up rows were probability distributions

    def run(self, signature: str, feed: Feed) -> dict[str, np.ndarray]:
        """Named outputs of ``signature`` on ``feed`` (rows first when the signature is batched).

        ModelRejectedInput when TensorFlow refuses the values themselves while running them.
        """
        try:
            return self.runners[signature](feed)
        except REFUSALS as exc:
            raise ModelRejectedInput(f"model {self.name} refused the input: {refusal_of(exc)}") from None

    def close(self) -> None:
        self.release()

    def describe(self) -> dict:
        """JSON-ready description (no callables)."""
        return {
            "name": self.name,
            "format": self.fmt,
            "signature": self.signature.name,
            "batched": self.signature.batched,
            "inputs": [s.describe(batched=self.signature.batched) for s in self.signature.inputs],
            "outputs": [s.describe(batched=self.signature.batched) for s in self.signature.outputs],
            "signatures": sorted(self.signatures),
            "params": self.params,
            "load_ms": round(self.load_seconds * 1000, 1),
            "warmup_ms": round(self.warmup_seconds * 1000, 1),
        }


def load_model(
    path: Path,
    *,
    signature: str | None = None,
    trust_code: bool = False,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    name: str | None = None,
) -> LoadedModel:
    """Load and warm up the model at ``path``; raise ModelLoadError on any failure."""
    path = Path(path)
    _check_file(path, max_file_bytes)
    started = time.perf_counter()
    opened = open_saved_model(path) if path.is_dir() else open_keras(path, trust_code=trust_code)
    try:
        try:
            chosen = pick_signature(sorted(opened.signatures), signature, where="the model")
        except ValueError as exc:
            raise ModelLoadError(path, str(exc)) from None
        serving = opened.signatures[chosen]
        _check_row_size(path, serving)
        loaded = time.perf_counter()
        serving, distributions = _warm_up(path, serving, opened.runners[chosen])
    except BaseException:
        opened.close()
        raise
    signatures = {**opened.signatures, chosen: serving}
    return LoadedModel(
        name=name or path.name,
        path=str(path),
        fmt=opened.fmt,
        signature=serving,
        signatures=signatures,
        params=opened.params,
        load_seconds=loaded - started,
        warmup_seconds=time.perf_counter() - loaded,
        runners=opened.runners,
        release=opened.close,
        keep=opened.keep,
        distributions=distributions,
    )


def _check_file(path: Path, max_file_bytes: int) -> None:
    if path.is_dir() and not (path / SAVED_MODEL_FILE).is_file():
        raise ModelLoadError(path, f"the folder has no {SAVED_MODEL_FILE}; it is not a SavedModel")
    if not path.is_dir() and path.suffix not in MODEL_SUFFIXES:
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


def _check_row_size(path: Path, signature: Signature) -> None:
    """Refuse shape bombs: a row so large that warm-up alone would exhaust memory."""
    for what, specs in (("input", signature.inputs), ("output", signature.outputs)):
        for spec in specs:
            if spec.known_elements() > MAX_ROW_ELEMENTS:
                raise ModelLoadError(
                    path,
                    f"{what} '{spec.name}' of shape {spec.shape_text()} has "
                    f"{spec.known_elements()} values per row; the limit is {MAX_ROW_ELEMENTS}",
                )


def _warm_up(path: Path, signature: Signature, runner: Runner) -> tuple[Signature, frozenset[str]]:
    """Run the signature on zeros; returns it, marked unbatched if its outputs do not follow the batch, and
    the outputs whose rows were probability distributions (see :func:`_distributions`)."""
    certain = all(s.fully_defined and s.dtype != "string" for s in signature.inputs)
    distributions: frozenset[str] = frozenset()
    try:
        for rows in (1, 2) if signature.batched else (None,):
            outputs = runner(Feed({s.name: _zeros(s, rows) for s in signature.inputs}))
            if rows is not None and not _follows_batch(outputs, rows):
                log.info(
                    "%s: signature %s gives outputs without a batch dimension; served unbatched", path, signature.name
                )
                return _warm_up(path, _unbatched(signature), runner)
            _check_outputs(path, signature, outputs, rows, certain)
            distributions = _distributions(outputs, rows)
    except ModelLoadError:
        raise
    except Exception as exc:
        if certain:
            raise ModelLoadError(path, f"warm-up failed: {reason_of(exc)}") from exc
        log.warning(
            "%s: warm-up on synthetic inputs failed (%s); its first requests warm it up instead", path, reason_of(exc)
        )
    return signature, distributions


def _distributions(outputs: dict[str, np.ndarray], rows: int | None) -> frozenset[str]:
    """Outputs of several float units per row, each row in [0, 1] and summing to 1: a softmax's, whatever the
    input (raw logits of zeros are the biases, which almost never do)."""
    found = set()
    for name, value in outputs.items():
        value = np.asarray(value)
        if value.dtype.kind != "f" or value.size == 0:
            continue
        flat = value.reshape(len(value) if rows is not None else 1, -1).astype(np.float64)
        if flat.shape[1] > 1 and np.all((flat >= 0) & (flat <= 1)) and np.allclose(flat.sum(axis=1), 1, atol=1e-3):
            found.add(name)
    return frozenset(found)


def _zeros(spec: TensorSpec, rows: int | None) -> np.ndarray:
    dims = list(spec.shape or ())
    free = dims.count(None)
    fill = WARMUP_FREE_DIM if spec.known_elements() * WARMUP_FREE_DIM**free <= MAX_ROW_ELEMENTS else 1
    shape = ([rows] if rows is not None else []) + [fill if d is None else d for d in dims]
    if spec.dtype == "string":
        return np.full(shape, b"", dtype=object)
    return np.zeros(shape, dtype=spec.numpy_dtype)


def _follows_batch(outputs: dict[str, np.ndarray], rows: int) -> bool:
    return all(np.ndim(v) >= 1 and np.shape(v)[0] == rows for v in outputs.values())


def _unbatched(signature: Signature) -> Signature:
    def full(spec: TensorSpec) -> TensorSpec:
        return dataclasses.replace(spec, shape=None if spec.shape is None else (None, *spec.shape))

    return Signature(
        signature.name,
        tuple(map(full, signature.inputs)),
        tuple(dataclasses.replace(s, shape=None) for s in signature.outputs),
        batched=False,
    )


def _check_outputs(path: Path, signature: Signature, outputs: dict, rows: int | None, certain: bool) -> None:
    missing = [s.name for s in signature.outputs if s.name not in outputs]
    if missing:
        raise ModelLoadError(path, f"warm-up gave no output {', '.join(missing)}")
    for spec in signature.outputs:
        value = np.asarray(outputs[spec.name])
        got = value.shape[1:] if rows is not None else value.shape
        if spec.shape is not None and (
            len(got) != len(spec.shape) or any(want is not None and want != have for want, have in zip(spec.shape, got))
        ):
            raise ModelLoadError(
                path, f"warm-up gave output '{spec.name}' of shape {list(got)}, expected {spec.shape_text()}"
            )
        if certain and value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            raise ModelLoadError(path, f"warm-up on zeros gave non-finite values in output '{spec.name}'")


def _size(path: Path) -> int:
    """Bytes of a model file, or of every file in a SavedModel folder."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size
