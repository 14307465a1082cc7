"""A servable (TF Serving's word): one loaded version of an app, and its lifecycle states.

Everything a request needs (preprocessing, inference through the batcher,
formatting) comes from one ServingVersion, so a response can never mix two
versions. ModelUtil (model_util.py) creates, swaps and retires them.
"""
from __future__ import annotations

import threading
import time
from enum import Enum

import numpy as np

from . import postprocess, preprocess
from .batching import Batcher
from .errors import BadTensor, InputError
from .loader import LoadedModel, as_tensor
from .manifest import AppSpec
from .source import VersionCandidate


class State(str, Enum):
    """Lifecycle of one version: START -> LOADING -> AVAILABLE -> UNLOADING -> END, or FAILED."""

    START = "START"
    LOADING = "LOADING"
    AVAILABLE = "AVAILABLE"
    UNLOADING = "UNLOADING"
    END = "END"
    FAILED = "FAILED"


class ServingVersion:
    """One loaded version of an app: its manifest, its models and its batcher.

    Everything a request needs (preprocessing, inference, formatting) comes from
    the same ServingVersion, so a response can never mix two versions.
    """

    def __init__(self, spec: AppSpec, candidate: VersionCandidate, models: tuple[LoadedModel, ...], load_seconds: float):
        self.spec = spec
        self.id = candidate.id
        self.candidate = candidate
        self.models = models
        self.load_seconds = load_seconds
        self.input_shape = models[0].input_shape
        self.kinds = tuple(postprocess.infer_kind(spec.output, m.output_shape) for m in models)
        self.loaded_at = time.time()
        self.state = State.AVAILABLE
        self._inflight = 0
        self._lock = threading.Lock()
        self.batcher = Batcher(self._run_models, spec.batching, name=f"{spec.name}@{self.id}")

    # -- request path ---------------------------------------------------
    def prepare_images(self, images: list[bytes], *, max_pixels: int = preprocess.DEFAULT_MAX_PIXELS) -> np.ndarray:
        """Decode and preprocess image bytes into one float32 batch for this version's models."""
        if len(self.input_shape) != 3:
            raise InputError(
                f"app '{self.spec.name}' takes vectors of shape {list(self.input_shape)}, not images; send 'instances'"
            )
        rows = [preprocess.prepare_image(data, spec=self.spec.input, input_shape=self.input_shape,
                                         max_pixels=max_pixels) for data in images]
        return np.stack(rows)

    def prepare_tensors(self, instances, *, max_batch: int) -> np.ndarray:
        """Validate ready tensors (JSON ``instances``) against this version's input shape."""
        return preprocess.tensor_batch(instances, input_shape=self.input_shape, max_batch=max_batch)

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run every model on ``batch`` (through the dynamic batcher); one output array per model.

        A batch of the wrong shape is refused here, before it can join (and fail) others.
        """
        return self.batcher.submit(self._checked(batch))

    async def infer_async(self, batch: np.ndarray) -> list[np.ndarray]:
        """:meth:`infer` for a coroutine on an event loop (the ASGI predict path)."""
        return await self.batcher.submit_async(self._checked(batch))

    def format(self, outputs: list[np.ndarray]) -> list[list[dict]]:
        """Per input row, one result dict per model, in file-name order."""
        per_model = [
            postprocess.format_results(m.name, out, spec=self.spec.output, kind=kind)
            for m, kind, out in zip(self.models, self.kinds, outputs)
        ]
        return [list(row) for row in zip(*per_model)]

    def _checked(self, batch: np.ndarray) -> np.ndarray:
        if batch.ndim != len(self.input_shape) + 1 or batch.shape[1:] != self.input_shape:
            raise BadTensor(f"app '{self.spec.name}' expects rows of shape {list(self.input_shape)}, "
                            f"got {list(batch.shape[1:])}")
        return np.asarray(batch, dtype=np.float32)

    def _run_models(self, batch: np.ndarray) -> list[np.ndarray]:
        tensor = as_tensor(batch)  # once for every model of the app
        return [model.infer(tensor) for model in self.models]

    # -- lifecycle ------------------------------------------------------
    def enter(self) -> bool:
        """Count a request in; False if this version has begun unloading (take the new one)."""
        with self._lock:
            if self.state is not State.AVAILABLE:
                return False
            self._inflight += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self._inflight -= 1
            self._finish_if_idle()

    def retire(self) -> None:
        """Stop taking new work; END once the requests in flight are done."""
        with self._lock:
            self.state = State.UNLOADING
            self._finish_if_idle()

    def _finish_if_idle(self) -> None:
        if self.state is State.UNLOADING and self._inflight == 0:
            self.state = State.END
            self.batcher.close()

    def describe(self) -> dict:
        return {
            "version": self.id,
            "state": self.state.value,
            "loaded_at": self.loaded_at,
            "load_ms": round(self.load_seconds * 1000, 1),
            "models": [m.describe() for m in self.models],
        }
