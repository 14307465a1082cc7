"""Load one model safely, pick the signature it serves, warm it up.

Contract of :func:`load_model`:

* a model is a ``.h5`` / ``.keras`` file (:mod:`keras_models`) or a SavedModel
  folder (:mod:`saved_models`); its size is capped and its files are inspected
  (:mod:`filecheck`) before any loader opens them;
* it serves one signature (``signature``, else ``serving_default``, else its
  only one); every other signature stays callable by name;
* shape bombs (a row of more than MAX_ROW_ELEMENTS values) are refused;
* it is warmed up (:mod:`warmup`: its TF Serving warm-up requests, the
  version's ``warmup.npz``, or zeros of its input shapes, batch 1 and 2); a
  signature whose outputs do not follow the batch is served unbatched;
* nothing process-global is touched (never ``clear_session()``, never
  ``model.predict()``);
* any failure becomes a :class:`ModelLoadError` naming the file and the reason.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from .errors import ModelLoadError, ModelRejectedInput
from .feed import Feed
from .filecheck import check_model_file
from .keras_models import open_keras
from .limits import DEFAULT_MAX_FILE_BYTES
from .opened import Runner, refusal_of
from .process_memory import resident_bytes
from .saved_models import SAVED_MODEL_FILE, open_saved_model
from .signature import Signature, pick_signature
from .warmup import MAX_ROW_ELEMENTS, warm_up

log = logging.getLogger(__name__)

MODEL_SUFFIXES = (".h5", ".keras")
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
    memory_bytes: int = 0  # what loading and warming it up took (see memory.py), at least its files' size

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
            "memory_bytes": self.memory_bytes,
        }


def load_model(
    path: Path,
    *,
    signature: str | None = None,
    trust_code: bool = False,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    name: str | None = None,
    warmup_shapes: dict[str, tuple[int, ...]] | None = None,
    warmup_values: Path | None = None,
) -> LoadedModel:
    """Load and warm up the model at ``path`` (``warmup_*``: the manifest's ``[warmup] shapes`` and the
    version's values file, see :mod:`warmup`); raise ModelLoadError on any failure."""
    path = Path(path)
    size = _check_file(path, max_file_bytes)
    started, resident = time.perf_counter(), resident_bytes()
    opened = open_saved_model(path) if path.is_dir() else open_keras(path, trust_code=trust_code)
    try:
        try:
            chosen = pick_signature(sorted(opened.signatures), signature, where="the model")
        except ValueError as exc:
            raise ModelLoadError(path, str(exc)) from None
        serving = opened.signatures[chosen]
        _check_row_size(path, serving)
        loaded = time.perf_counter()
        warmed = warm_up(path, serving, opened.runners[chosen], shapes=warmup_shapes, values=warmup_values)
        serving = warmed.signature
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
        distributions=warmed.distributions,
        memory_bytes=max(size, resident_bytes() - resident),
    )


def _check_file(path: Path, max_file_bytes: int) -> int:
    """The model file's (or SavedModel folder's) size once it passed the checks; ModelLoadError else."""
    if path.is_dir() and not (path / SAVED_MODEL_FILE).is_file():
        raise ModelLoadError(path, f"the folder has no {SAVED_MODEL_FILE}; it is not a SavedModel")
    if not path.is_dir() and path.suffix not in MODEL_SUFFIXES:
        raise ModelLoadError(path, f"unsupported file type '{path.suffix}' (expected .h5 or .keras)")
    try:
        size = model_size(path)
    except OSError as exc:
        raise ModelLoadError(path, f"cannot read the file: {exc.strerror}") from exc
    if size == 0:
        raise ModelLoadError(path, "the file is empty")
    if size > max_file_bytes:
        raise ModelLoadError(path, f"the file is {size} bytes; the limit is {max_file_bytes}")
    check_model_file(path, max_bytes=max_file_bytes)
    return size


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


def model_size(path: Path | str) -> int:
    """Bytes of a model file, or of every file in a SavedModel folder."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def model_sizes(files) -> list[int]:
    """:func:`model_size` of each of a version's model files (one that cannot be read counts 0: its load says
    why)."""
    sizes = []
    for file in files:
        try:
            sizes.append(model_size(file))
        except OSError:
            sizes.append(0)
    return sizes


def prime_runtime() -> None:
    """Save and load a model of a million weights once, the way every model loads, so that what h5py, Keras,
    TensorFlow and the allocator set up on a process's first real model (measured: 9-12 MiB) is not charged to
    the first app under a memory budget (it costs the process about 25 MiB and 0.3 s, once)."""
    inputs = keras.Input((1024,))
    model = keras.Model(inputs, keras.layers.Dense(1024)(inputs))
    with tempfile.TemporaryDirectory(prefix="yyai-prime-") as folder:
        for suffix in MODEL_SUFFIXES:
            model.save(Path(folder) / f"prime{suffix}")
            load_model(Path(folder) / f"prime{suffix}").close()
