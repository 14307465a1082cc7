"""A servable (TF Serving's word): one loaded version of an app, and its lifecycle states.

Everything a request needs (checking its inputs, inference through the
batcher, formatting) comes from one ServingVersion, so a response can never
mix two versions. ModelUtil (model_util.py) creates, swaps and retires them.
"""

from __future__ import annotations

import asyncio
import threading
import time
from enum import Enum
from typing import Any

import numpy as np

from . import postprocess, request
from .batching import Batcher, Outputs
from .errors import InputError
from .feed import Feed
from .handlers import LoadedHandler
from .limits import RequestLimits
from .loader import LoadedModel
from .manifest import AppSpec
from .request import Prepared
from .signature import Signature
from .source import VersionCandidate

ModelOutputs = list[dict[str, np.ndarray | list[np.ndarray]]]  # per model: named outputs, rows first


class State(str, Enum):
    """Lifecycle of one version: START -> LOADING -> AVAILABLE -> UNLOADING -> END, or FAILED; an app whose
    version is unloaded under its memory budget, to be loaded again on its next request, is on STANDBY."""

    START = "START"
    LOADING = "LOADING"
    AVAILABLE = "AVAILABLE"
    UNLOADING = "UNLOADING"
    END = "END"
    FAILED = "FAILED"
    STANDBY = "STANDBY"

    @property
    def serves(self) -> bool:
        """A request is answered: by the loaded version, or by the standby one it loads."""
        return self in (State.AVAILABLE, State.STANDBY)


class ServingVersion:
    """One loaded version of an app: its manifest, its models, its handler and its batcher.

    Every model serves a signature with the same inputs (checked at load);
    ``signature`` is the first model's, the one requests use unless they name
    another that every model has. An app with a handler may have no model; its
    ``signature`` is then None.
    """

    def __init__(
        self,
        spec: AppSpec,
        candidate: VersionCandidate,
        models: tuple[LoadedModel, ...],
        load_seconds: float,
        handler: LoadedHandler | None = None,
    ):
        self.spec = spec
        self.id = candidate.id
        self.candidate = candidate
        self.models = models
        self.handler = handler
        self.load_seconds = load_seconds
        self.signature = models[0].signature if models else None
        self.kinds = tuple(_kind(spec, m) for m in models)
        self.loaded_at = time.time()
        self.state = State.AVAILABLE
        self._inflight = 0
        self._lock = threading.Lock()
        self.batcher = Batcher(self._run_models, spec.batching, name=f"{spec.name}@{self.id}")

    # -- request path ---------------------------------------------------
    def signature_named(self, name: str | None) -> Signature:
        """The signature ``name`` (None: the served one); InputError unless every model has it alike."""
        if name is None or name == self.signature.name:
            return self.signature
        found = [m.signatures.get(name) for m in self.models]
        if any(s is None for s in found):
            known = sorted(set.intersection(*(set(m.signatures) for m in self.models)))
            raise InputError(
                f"app '{self.spec.name}' has no signature '{name}' in every model (signatures: {', '.join(known)})"
            )
        if any(_inputs_key(s) != _inputs_key(found[0]) for s in found[1:]):
            raise InputError(f"signature '{name}' takes different inputs in the models of app '{self.spec.name}'")
        return found[0]

    @property
    def image_input(self) -> str | None:
        """The input the image forms feed (``[input] name``, else the only input), if images can feed it."""
        if self.signature is None:
            return None
        spec = request.image_input(self.signature, self.spec.input)
        return spec.name if spec is not None else None

    def prepare(
        self,
        values: dict[str, Any],
        *,
        signature: Signature | None = None,
        columnar: bool = False,
        limits: RequestLimits = RequestLimits(),
    ) -> Prepared:
        """Check a request's named values against ``signature`` (default: the served one); jobs for :meth:`infer`."""
        return request.prepare(
            values, signature=signature or self.signature, input_spec=self.spec.input, columnar=columnar, limits=limits
        )

    def infer(self, prepared: Prepared) -> ModelOutputs:
        """Run every model on the prepared request (through the dynamic batcher); per model, its named outputs."""
        return _reassemble(prepared, self.batcher.submit_all([job for _, job in prepared.jobs]))

    async def infer_async(self, prepared: Prepared) -> ModelOutputs:
        """:meth:`infer` for a coroutine on an event loop (the ASGI predict path)."""
        jobs = [job for _, job in prepared.jobs]
        if len(jobs) == 1:
            return await self.batcher.submit_async(jobs[0])
        return _reassemble(prepared, await asyncio.gather(*(self.batcher.submit_async(job) for job in jobs)))

    def format(self, outputs: ModelOutputs) -> list[list[dict]]:
        """Per input row, one result dict per model, in file-name order (the served signature's outputs)."""
        per_model = []
        for model, kind, named in zip(self.models, self.kinds, outputs):
            if kind is None:
                per_model.append(postprocess.format_outputs(model.name, named, decimals=self.spec.output.decimals))
            else:
                (value,) = named.values()
                per_model.append(postprocess.format_results(model.name, value, spec=self.spec.output, kind=kind))
        return [list(row) for row in zip(*per_model)]

    def _run_models(self, signature: str, inputs: dict[str, np.ndarray]) -> Outputs:
        batched = self.signature_named(signature).batched
        feed = Feed(inputs if batched else {name: array[0] for name, array in inputs.items()})
        results = [model.run(signature, feed_for(model, signature, feed)) for model in self.models]
        if batched:
            return results
        return [{name: np.asarray(value)[np.newaxis] for name, value in named.items()} for named in results]

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

    @property
    def in_flight(self) -> int:
        """Requests holding this version now (entered, not yet left)."""
        return self._inflight

    @property
    def ended(self) -> bool:
        """Unloaded: retired, and its last request done (its models closed)."""
        return self.state is State.END

    def retire(self) -> None:
        """Stop taking new work; END once the requests in flight are done (models closed then)."""
        with self._lock:
            self.state = State.UNLOADING
            self._finish_if_idle()

    def _finish_if_idle(self) -> None:
        if self.state is State.UNLOADING and self._inflight == 0:
            self.state = State.END
            self.batcher.close()
            for model in self.models:
                model.close()
            if self.handler is not None:
                self.handler.close()


def _inputs_key(signature: Signature) -> tuple:
    """What models of one app must share for a signature: input names (unless single), dtypes, shapes, batching."""
    specs = [(s.dtype, s.shape) if len(signature.inputs) == 1 else (s.name, s.dtype, s.shape) for s in signature.inputs]
    return (*specs, signature.batched)


def feed_for(model: LoadedModel, signature: str, feed: Feed) -> Feed:
    """``feed`` under the model's own input name (one-input models of an app may name it differently)."""
    names = model.signatures[signature].input_names
    if len(names) == 1 and names[0] not in feed.arrays:
        return feed.renamed({names[0]: next(iter(feed.arrays))})
    return feed  # one conversion for every model


def _kind(spec: AppSpec, model: LoadedModel) -> str | None:
    """The result kind of a one-output model; None for a model with several outputs."""
    outputs = model.signature.outputs
    if len(outputs) != 1:
        return None
    return postprocess.infer_kind(
        spec.output, outputs[0].shape, outputs[0].dtype, outputs[0].name in model.distributions
    )


def _reassemble(prepared: Prepared, results: list[Outputs]) -> ModelOutputs:
    """Per model, each output's rows back in request order (a list of rows when their shapes differ)."""
    if len(results) == 1:
        return results[0]
    order = [row for indices, _ in prepared.jobs for row in indices]
    position = np.argsort(order)
    merged = []
    for model in range(len(results[0])):
        named = {}
        for name in results[0][model]:
            rows = [row for result in results for row in result[model][name]]
            rows = [rows[i] for i in position]
            first = np.shape(rows[0])
            named[name] = np.stack(rows) if all(np.shape(r) == first for r in rows) else rows
        merged.append(named)
    return merged
