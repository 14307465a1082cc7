"""The data plane: inference with named tensors, readiness, metadata and version matching.

Every protocol is a codec over this module (after KServe's ``DataPlane``): the
canonical API, the fast path, the seed routes, TF Serving REST and gRPC and
KServe v2 all turn their wire format into an :class:`InferRequest` and their
answer out of an :class:`InferResult`. Nothing here knows HTTP. What a request
addresses (app, model, version) is :mod:`.addressing`.

Every call takes the serving version once and runs on it, so an answer never
mixes versions, and inference always goes through the version's batcher.
With traces on (:mod:`yyai.tracing`), reading and preparing a request is its
``decode`` span.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from yyai import metrics, tracing
from yyai.conf import yyai_settings
from yyai.fleet.process_registry import get_registry
from yyai.runtime.errors import BadTensor, InputError
from yyai.runtime.limits import RequestLimits
from yyai.runtime.preprocess import image_dimensions
from yyai.runtime.request import Prepared
from yyai.runtime.servable import ModelOutputs, ServingVersion, State
from yyai.runtime.signature import Signature
from yyai.runtime.tensors import EncodedImage, Rows
from yyai.services import payloads
from yyai.services.addressing import Address, check_version, output_map, parse_address, serving
from yyai.services.cpu import run_cpu, run_shared


@dataclass(frozen=True)
class InferRequest:
    """One inference call, whatever the protocol.

    Exactly one way of giving the inputs: ``inputs`` (columnar: ``{name: tensor}``,
    or a bare tensor for a one-input signature; the batch dimension included
    when the signature has one), ``instances`` (rows: one value per row, or
    ``{name: value}`` per row) or ``images`` (image files for the app's image
    input, one row each; the other inputs then in ``inputs``, one entry per image).
    """

    address: str
    inputs: Any = None
    instances: list | None = None
    images: list[bytes] | None = None
    version: str | int | None = None
    label: str | None = None  # a version label (yyai.runtime.routes), instead of ``version``
    signature: str | None = None
    outputs: tuple[str, ...] | None = None  # requested outputs; None: every output of the address


@dataclass(frozen=True)
class InferResult:
    """The named outputs of the address (requested order), and every model's, from one version."""

    address: Address
    version: ServingVersion
    signature: Signature
    outputs: dict[str, np.ndarray | list[np.ndarray]]
    per_model: ModelOutputs
    rows: int
    elapsed_ms: float

    def tensors(self) -> dict[str, np.ndarray]:
        """Each output as one tensor, the way a columnar answer carries it: rows first when the signature is
        batched, the whole tensor of the one row when it is not. BadTensor when rows differ in shape."""
        if not self.signature.batched and self.rows != 1:
            raise BadTensor("an unbatched signature answers one row as tensors; send one row per request")
        tensors = {}
        for name, value in self.outputs.items():
            if isinstance(value, list):
                raise BadTensor(
                    f"the rows' outputs '{name}' have different shapes and cannot form one tensor; "
                    f"send one row per request"
                )
            tensors[name] = value if self.signature.batched else value[0]
        return tensors


def infer(request: InferRequest) -> InferResult:
    """Run ``request`` on the serving version (blocking this thread until its batch ran)."""
    address = parse_address(request.address)
    with serving(address, request.version, label=request.label) as version:
        return infer_on(version, address, request)


def infer_on(version: ServingVersion, address: Address, request: InferRequest) -> InferResult:
    """:func:`infer` on a version the caller already holds (inside :func:`serving`)."""
    started = time.perf_counter()
    signature, prepared = (
        prepare(version, address, request)
        if not tracing.ON
        else tracing.call("decode", tracing.tags(version), prepare, version, address, request)
    )
    return _result(address, version, signature, request, prepared, version.infer(prepared), started)


# A small request's images decode on the event loop when they have this many pixels together (by their headers):
# 64x64 decodes in ~35 us, less than the trip to the CPU pool and back costs (bench/NOTES.md, "Session 6").
INLINE_PIXELS = 128 * 128


class Where(enum.Enum):
    """Where :func:`infer_async` reads and prepares a request."""

    POOL = "pool"  # in the CPU pool, a trip of its own: a large body, or one naming a file to read
    SHARED = "shared"  # in the CPU pool, in one trip with the other small requests of this pass of the loop
    LOOP = "loop"  # on the event loop; preparing it too when its images have at most INLINE_PIXELS


async def infer_async(
    address: str, read: Callable[[], InferRequest | None], *, where: Where = Where.POOL
) -> InferResult | None:
    """:func:`infer` for a coroutine, on the request ``read()`` builds for ``address`` (None: no request, and
    nothing runs). The serving version is held first; then reading (parsing a body), decoding and resizing
    take one trip to the CPU pool and the batch is awaited.

    ``where`` other than POOL: the caller vouches that ``read()`` is quick and reads no file (a body of a few
    kB). SHARED reads and prepares it in a trip it shares (:func:`yyai.services.cpu.run_shared`); LOOP reads it
    on the event loop, and prepares it there when its images have at most INLINE_PIXELS together, or it has
    none (anything larger in the CPU pool)."""
    addressed = parse_address(address)
    with serving(addressed) as version:
        if where is not Where.LOOP:
            staged = await _off_loop(version, where, _read_and_prepare, version, addressed, read)
        else:
            request = _read(version, addressed, read)
            staged = (
                None
                if request is None
                else _traced(version, _prepared, version, addressed, request)
                if _few_pixels(request)
                else await _off_loop(version, Where.POOL, _prepared, version, addressed, request)
            )
        if staged is None:
            return None
        request, signature, prepared, started = staged
        return _result(addressed, version, signature, request, prepared, await version.infer_async(prepared), started)


def _off_loop(version: ServingVersion, where: Where, function, *args):
    """``function(*args)`` in the CPU pool, in a trip of its own or a SHARED one (a ``decode`` span with traces
    on), to be awaited."""
    pooled = (run_shared if where is Where.SHARED else run_cpu)(function, *args)
    return pooled if not tracing.ON else tracing.traced("decode", tracing.tags(version), pooled)


def _traced(version: ServingVersion, function, *args):
    """``function(*args)`` here (a ``decode`` span with traces on)."""
    return function(*args) if not tracing.ON else tracing.call("decode", tracing.tags(version), function, *args)


def _few_pixels(request: InferRequest) -> bool:
    """No images, or images of at most INLINE_PIXELS together by their headers (an unknown format or a broken
    header: not few, and :func:`prepare` in the pool says what is wrong, in its order of checks)."""
    try:
        sizes = [image_dimensions(data) for data in request.images or ()]
    except InputError:
        return False
    return None not in sizes and sum(width * height for width, height in sizes) <= INLINE_PIXELS


def _read_and_prepare(version: ServingVersion, address: Address, read: Callable[[], InferRequest | None]):
    request = _read(version, address, read)
    return None if request is None else _prepared(version, address, request)


def _read(version: ServingVersion, address: Address, read: Callable[[], InferRequest | None]) -> InferRequest | None:
    request = read()
    if request is None:
        return None
    if request.address != address.name:
        raise ValueError(f"read() built a request for '{request.address}', not '{address.name}'")
    check_version(version, request.version, name=address.name)
    return request


def _prepared(version: ServingVersion, address: Address, request: InferRequest):
    started = time.perf_counter()
    return (request, *prepare(version, address, request), started)


def request_limits() -> RequestLimits:
    return RequestLimits(
        max_rows=yyai_settings.MAX_ROWS_PER_REQUEST,
        max_pixels=yyai_settings.MAX_IMAGE_PIXELS,
        max_request_pixels=yyai_settings.MAX_REQUEST_PIXELS,
    )


def prepare(version: ServingVersion, address: Address, request: InferRequest) -> tuple[Signature, Prepared]:
    """The signature ``request`` runs and its prepared jobs (inputs checked, images decoded); InputError else."""
    signature = version.signature_named(request.signature)
    if request.outputs:
        names = [name for name, _, _ in output_map(version, address, signature)]
        unknown = [w for w in request.outputs if w not in names]
        if unknown:
            raise BadTensor(f"unknown output(s) {', '.join(unknown)}; the outputs are {', '.join(names)}")
    values, columnar = _values(version, signature, request)
    return signature, version.prepare(values, signature=signature, columnar=columnar, limits=request_limits())


def _values(version: ServingVersion, signature: Signature, request: InferRequest) -> tuple[dict[str, Any], bool]:
    """The request's inputs by name, and whether they are columnar."""
    if request.images is not None:
        image = version.image_input if signature is version.signature else None
        if image is None:
            raise BadTensor(
                f"app '{version.spec.name}' has no input that takes images (inputs: "
                f"{', '.join(signature.input_names)}); send tensors, or name the image input in "
                f"app.toml ([input] name)"
            )
        extra = _named(request.inputs, signature, "inputs") if request.inputs is not None else {}
        if image in extra:
            raise BadTensor(f"input '{image}' is given twice: as images and in 'inputs'")
        return {image: Rows(EncodedImage(data) for data in request.images), **extra}, False
    if request.instances is not None:
        return rows_by_name(request.instances, signature), False
    return _named(request.inputs, signature, "inputs"), True


def _named(value: Any, signature: Signature, field: str) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if len(signature.inputs) != 1:
        raise BadTensor(f"'{field}' must be an object naming the inputs {', '.join(signature.input_names)}")
    return {signature.inputs[0].name: value}


def rows_by_name(instances: Any, signature: Signature) -> dict[str, Rows]:
    """Row format -> one :class:`Rows` per input. A row is ``{name: value}``, or the value of the only input."""
    if not isinstance(instances, list) or not instances:
        raise BadTensor("instances must be a non-empty list with one entry per row")
    dicts = [isinstance(row, dict) and not isinstance(row, EncodedImage) for row in instances]
    if not any(dicts):
        if len(signature.inputs) != 1:
            raise BadTensor(f"each instance must be an object naming the inputs {', '.join(signature.input_names)}")
        return {signature.inputs[0].name: Rows(instances)}
    if not all(dicts):
        raise BadTensor("mixing objects and plain values in instances is not supported")
    names = list(instances[0])
    if any(list(row) != names and set(row) != set(names) for row in instances):
        raise BadTensor("every instance must name the same inputs")
    return {name: Rows(row[name] for row in instances) for name in names}


def since(started: float) -> float:
    """Milliseconds since ``started`` (a perf_counter reading), rounded to 0.01."""
    return round((time.perf_counter() - started) * 1000, 2)


def _result(
    address: Address,
    version: ServingVersion,
    signature: Signature,
    request: InferRequest,
    prepared: Prepared,
    per_model: ModelOutputs,
    started: float,
) -> InferResult:
    metrics.observe_predict(version, rows=prepared.rows)
    named = {name: per_model[index][output] for name, index, output in output_map(version, address, signature)}
    if request.outputs:
        named = {name: named[name] for name in request.outputs}
    payloads.offer(version.spec, version.id, request, named)
    return InferResult(
        address=address,
        version=version,
        signature=signature,
        outputs=named,
        per_model=per_model,
        rows=prepared.rows,
        elapsed_ms=since(started),
    )


def readiness() -> dict[str, str]:
    """The state of every app readiness waits for (see ModelUtil.expected), by name."""
    return {util.name: util.state.value for util in get_registry().all() if util.expected}


def server_ready() -> bool:
    """True when every app readiness waits for serves a version (loaded, or on standby under the memory budget)."""
    return all(State(state).serves for state in readiness().values())
