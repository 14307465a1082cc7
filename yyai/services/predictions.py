"""The canonical predict answer, and the apps whose handler builds it.

:func:`predict` runs every model of an app on one version through the data plane
(:mod:`.dataplane`); for an app with a handler (``yyai.runtime.handlers``) it runs
the hooks around the models' batcher instead, in the calling thread. Every
predict route answers with :meth:`PredictionResult.to_body`; a handler's
``context.predict`` is :func:`call_app`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from yyai import metrics
from yyai.runtime.handlers import HandlerRequest
from yyai.runtime.request import check_image_sizes
from yyai.runtime.servable import ServingVersion
from yyai.services import payloads
from yyai.services.addressing import Address, handles, parse_address, serving
from yyai.services.dataplane import (
    InferRequest,
    InferResult,
    Where,
    infer_async,
    infer_on,
    prepare,
    request_limits,
    since,
)


@dataclass(frozen=True)
class PredictionResult:
    """A canonical predict call's answer: per input row, one result per model; or the app handler's answer."""

    app: str
    version: str
    demo: bool
    rows: list[list[dict[str, Any]]]
    elapsed_ms: float
    answer: dict[str, Any] | None = None  # what the handler's postprocess gave (a non-dict as {"result": ...})

    def to_body(self, *, many: bool) -> dict:
        """The predict answer (DESIGN section 5): ``predictions`` per input for batch inputs, else ``result``;
        a handler's answer merged in instead (it cannot replace ``app``, ``version`` or ``demo``)."""
        body = {"app": self.app, "version": self.version, "demo": self.demo}
        if self.answer is not None:
            body.update((key, value) for key, value in self.answer.items() if key not in body)
        elif many:
            body["predictions"] = self.rows
        else:
            body["result"] = self.rows[0]
        body["elapsed_ms"] = self.elapsed_ms
        return body


def predict(
    *,
    app: str,
    images: list[bytes] | None = None,
    instances: Any = None,
    inputs: Any = None,
    version: str | None = None,
    label: str | None = None,
) -> PredictionResult:
    """Run every model of ``app`` on image files, rows or named tensors, all on one version (the one named by
    ``version`` or ``label``, else the app's route), between the hooks of the app's handler if it has one (in
    this thread: never call it on an event loop)."""
    request = InferRequest(address=app, images=images, instances=instances, inputs=inputs)
    address = parse_address(app)
    with serving(address, version, handled=True, label=label) as served:
        if handles(served, address):
            return _handled(served, address, request)
        return _prediction(infer_on(served, address, request))


def call_app(app: str, *, images: list[bytes] | None = None, instances: Any = None, inputs: Any = None) -> dict:
    """A handler's ``context.predict``: :func:`predict`, answered in the batch form (``predictions``)."""
    return predict(app=app, images=images, instances=instances, inputs=inputs).to_body(many=True)


def _handled(version: ServingVersion, address: Address, request: InferRequest) -> PredictionResult:
    """``request`` through the version's handler: preprocess, the models in the batcher, postprocess
    (each hook optional; see yyai.runtime.handlers)."""
    started = time.perf_counter()
    handler = version.handler
    if request.images:
        check_image_sizes(request.images, request_limits())  # before any hook decodes one
    asked = HandlerRequest(
        app=version.spec.name, images=request.images, instances=request.instances, inputs=request.inputs
    )
    values: dict[str, Any] = {}
    per_model, rows = [], 1
    if handler.has("preprocess"):
        values = handler.preprocess(asked)
        if version.models:
            prepared = version.prepare(values, columnar=True, limits=request_limits())
            per_model, rows = version.infer(prepared), prepared.rows
    elif version.models:
        prepared = prepare(version, address, request)[1]
        per_model, rows = version.infer(prepared), prepared.rows
    metrics.observe_predict(version, rows=rows)
    if not handler.has("postprocess"):
        return PredictionResult(
            app=version.spec.name,
            version=version.id,
            demo=version.spec.demo,
            rows=version.format(per_model),
            elapsed_ms=since(started),
        )
    outputs = {model.name: named for model, named in zip(version.models, per_model)} if version.models else values
    answer = handler.postprocess(outputs, asked)
    payloads.offer(version.spec, version.id, request, answer)
    return PredictionResult(
        app=version.spec.name,
        version=version.id,
        demo=version.spec.demo,
        rows=[],
        elapsed_ms=since(started),
        answer=answer if isinstance(answer, dict) else {"result": answer},
    )


async def predict_async(
    app: str, read: Callable[[], InferRequest | None], *, where: Where = Where.POOL
) -> PredictionResult | None:
    """:func:`predict` for a coroutine (yyai.http.fastpath), on the request ``read()`` builds (see
    :func:`infer_async`, and ``where`` there)."""
    result = await infer_async(app, read, where=where)
    return None if result is None else _prediction(result)


def _prediction(result: InferResult) -> PredictionResult:
    version = result.version
    return PredictionResult(
        app=version.spec.name,
        version=version.id,
        demo=version.spec.demo,
        rows=version.format(result.per_model),
        elapsed_ms=result.elapsed_ms,
    )
