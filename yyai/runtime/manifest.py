"""Parse and validate a model app's manifest, ``model_store/<app>/app.toml``.

Every key is optional. Anything the manifest leaves out is ``None`` here and is
filled in later from the model's own input and output shapes. An unknown key, a
wrong type or an impossible value raises :class:`ManifestError` naming the file
and the key. An app with a ``handler`` may add tables of its own (``[faces]``):
they are the handler's configuration (``AppSpec.handler_config``).
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ManifestError
from .toml_reader import TableReader

MANIFEST_NAME = "app.toml"
LABELS_NAME = "labels.txt"
MAX_MANIFEST_BYTES = 1 << 20  # an app.toml is a few hundred bytes; a huge or deeply nested one is refused

COLORS = ("rgb", "bgr", "gray")
LAYOUTS = ("nhwc",)
KINDS = ("regression", "classification")
POLICIES = ("latest", "specific")
HANDLER = re.compile(r"^(?P<file>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\.py)(?::(?P<cls>[A-Za-z_][A-Za-z0-9_]{0,127}))?$")
OWN_TABLES = {"input", "output", "batching", "versions", "warmup", "payload_log", "memory"}


@dataclass(frozen=True)
class InputSpec:
    """How image bytes become a model input. ``None`` = take it from the model.

    ``name`` is the input images feed (default: the model's only input).
    ``scale`` defaults to 1/255 for a float input and 1 for an integer one.
    """

    name: str | None = None
    size: tuple[int, int] | None = None  # (width, height); None: the model's, or each image's own
    color: str | None = None  # rgb | bgr | gray
    scale: float | None = None
    offset: float = 0.0

    def pixel_scale(self, integer_input: bool) -> float:
        if self.scale is not None:
            return self.scale
        return 1.0 if integer_input else 1.0 / 255.0


@dataclass(frozen=True)
class OutputSpec:
    """How a model's raw output row becomes a result. ``kind=None`` = infer from shape."""

    kind: str | None = None
    decimals: int | None = None  # None: the model's floats as they are; else rounded (the operator's choice)
    labels: tuple[str, ...] | None = None


@dataclass(frozen=True)
class BatchingSpec:
    """Dynamic batching limits of one app (see ``batching.py``)."""

    max_batch_size: int = 32
    batch_timeout_micros: int = 0  # greedy: run what is queued; batches grow with load
    max_enqueued: int = 256
    max_enqueued_bytes: int = 512 * 1024**2  # model input waiting in the queue (prepared arrays)


@dataclass(frozen=True)
class WarmupSpec:
    """How the models warm up (see ``warmup.py``): ``shapes`` sizes the zeros of inputs of unknown size
    (per input, without the batch dimension)."""

    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class PayloadLogSpec:
    """Sampled request and response logging (KServe's logger as the model): a ``sample`` share of the
    requests, to ``sink`` ("file": a JSON-lines file of the app under the data folder; or an http(s) URL that
    takes CloudEvents), each body cut past ``max_bytes``, the fields named in ``redact`` (dotted paths) hidden."""

    sample: float = 1.0
    sink: str = "file"
    max_bytes: int = 64 * 1024
    redact: tuple[str, ...] = ()


@dataclass(frozen=True)
class MemorySpec:
    """Under a memory budget (see ``budget.py``): a ``pinned`` app is always loaded; a higher ``priority``
    loads first at start-up and is unloaded last."""

    pinned: bool = False
    priority: int = 0


@dataclass(frozen=True)
class VersionsSpec:
    """Which version serves: the highest complete one, or a specific one."""

    policy: str = "latest"
    specific: int | None = None


@dataclass(frozen=True)
class AppSpec:
    """Everything the manifest says about one model app."""

    name: str
    description: str = ""
    demo: bool = False
    trust_code: bool = False
    signature: str | None = None  # SavedModels: the signature served (None: serving_default or the only one)
    handler: str | None = None  # "handler.py" or "handler.py:ClassName" (see handlers.py)
    handler_config: dict[str, Any] = field(default_factory=dict)  # the manifest's other tables, for the handler
    input: InputSpec = field(default_factory=InputSpec)
    output: OutputSpec = field(default_factory=OutputSpec)
    batching: BatchingSpec = field(default_factory=BatchingSpec)
    versions: VersionsSpec = field(default_factory=VersionsSpec)
    warmup: WarmupSpec = field(default_factory=WarmupSpec)
    payload_log: PayloadLogSpec | None = None  # None: no payload logging
    memory: MemorySpec = field(default_factory=MemorySpec)


def load_manifest(app_dir: Path, *, batching_defaults: BatchingSpec | None = None, name: str | None = None) -> AppSpec:
    """Read ``app_dir/app.toml`` (absent = all defaults) and ``labels.txt`` if present.

    ``batching_defaults`` are the server-wide defaults the manifest's
    ``[batching]`` table overrides key by key. ``name`` defaults to the folder's.
    """
    app_dir = Path(app_dir)
    path = app_dir / MANIFEST_NAME
    raw = read_toml(path) if path.is_file() else {}
    return parse_manifest(
        raw,
        name=name or app_dir.name,
        source=str(path),
        labels_file=app_dir / LABELS_NAME,
        batching_defaults=batching_defaults or BatchingSpec(),
    )


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML table in the file ``path``, read no further than the size limit (see :func:`parse_toml`)."""
    with Path(path).open("rb") as handle:
        return parse_toml(handle.read(MAX_MANIFEST_BYTES + 1), source=str(path))


def parse_toml(data: bytes, *, source: str) -> dict[str, Any]:
    """The TOML table in ``data``; ManifestError when it is too large, not UTF-8, not TOML or nested too deeply."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{source}: larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{source}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ManifestError(f"{source}: nested too deeply") from None


def parse_manifest(
    raw: dict[str, Any],
    *,
    name: str,
    source: str,
    labels_file: Path | None = None,
    batching_defaults: BatchingSpec | None = None,
) -> AppSpec:
    """Validate an already-parsed TOML table into an :class:`AppSpec`."""
    reader = TableReader(raw, source)
    handler = reader.get(raw, "handler", str, None)
    if handler is not None and not HANDLER.match(handler):
        reader.fail("handler", 'must name a Python file of the app, "handler.py" or "handler.py:ClassName"')
    handler_config = {
        key: value
        for key, value in raw.items()
        if handler is not None and isinstance(value, dict) and key not in OWN_TABLES
    }
    top = reader.table(
        None, {"description", "demo", "trust_code", "signature", "handler", *OWN_TABLES, *handler_config}
    )
    description = reader.get(top, "description", str, "")
    demo = reader.get(top, "demo", bool, False)
    trust_code = reader.get(top, "trust_code", bool, False)
    signature = reader.get(top, "signature", str, None)
    if signature is not None and not signature:
        reader.fail("signature", "must not be empty")

    inp = reader.table("input", {"name", "size", "color", "scale", "offset", "layout"})
    input_name = reader.get(inp, "input.name", str, None)
    if input_name is not None and not input_name:
        reader.fail("input.name", "must not be empty")
    size = reader.get(inp, "input.size", list, None)
    if size is not None:
        if len(size) != 2 or not all(type(v) is int and 0 < v <= 8192 for v in size):
            reader.fail("input.size", "must be [width, height], two integers from 1 to 8192")
        size = (size[0], size[1])
    reader.choice(inp, "input.layout", LAYOUTS, "nhwc")  # checked, not kept: images are fed in the one layout
    input_spec = InputSpec(
        name=input_name,
        size=size,
        color=reader.choice(inp, "input.color", COLORS, None),
        scale=reader.number(inp, "input.scale", None),
        offset=reader.number(inp, "input.offset", InputSpec.offset),
    )

    out = reader.table("output", {"kind", "decimals", "labels"})
    decimals = reader.get(out, "output.decimals", int, OutputSpec.decimals)
    if decimals is not None and not 0 <= decimals <= 12:
        reader.fail("output.decimals", "must be between 0 and 12")
    labels = reader.get(out, "output.labels", list, None)
    if labels is not None:
        if not labels or not all(isinstance(v, str) for v in labels):
            reader.fail("output.labels", "must be a non-empty list of strings")
    elif labels_file is not None and labels_file.is_file():
        labels = [line.strip() for line in labels_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    output_spec = OutputSpec(
        kind=reader.choice(out, "output.kind", KINDS, None),
        decimals=decimals,
        labels=tuple(labels) if labels else None,
    )

    defaults = batching_defaults or BatchingSpec()
    bat = reader.table("batching", {f.name for f in dataclasses.fields(BatchingSpec)})
    batching = BatchingSpec(
        max_batch_size=reader.positive(bat, "batching.max_batch_size", defaults.max_batch_size, 4096),
        batch_timeout_micros=reader.positive(
            bat, "batching.batch_timeout_micros", defaults.batch_timeout_micros, 10_000_000, allow_zero=True
        ),
        max_enqueued=reader.positive(bat, "batching.max_enqueued", defaults.max_enqueued, 1_000_000),
        max_enqueued_bytes=reader.positive(bat, "batching.max_enqueued_bytes", defaults.max_enqueued_bytes, 1 << 40),
    )

    warm = reader.table("warmup", {"shapes"})
    shapes = reader.get(warm, "warmup.shapes", dict, {})
    for input_name, shape in shapes.items():
        if not isinstance(shape, list) or not all(type(d) is int and 0 < d <= 1 << 24 for d in shape):
            reader.fail(
                f"warmup.shapes.{input_name}",
                "must be a list of positive integers (the input's shape without the batch dimension)",
            )

    payload_log = _payload_log(reader) if "payload_log" in raw else None
    mem = reader.table("memory", {"pinned", "priority"})
    memory = MemorySpec(
        pinned=reader.get(mem, "memory.pinned", bool, False),
        priority=reader.positive(mem, "memory.priority", 0, 1000, allow_zero=True),
    )

    ver = reader.table("versions", {"policy", "specific"})
    policy = reader.choice(ver, "versions.policy", POLICIES, "latest")
    specific = reader.get(ver, "versions.specific", int, None)
    if specific is not None and specific < 0:
        reader.fail("versions.specific", "must be a version number >= 0")
    if policy == "specific" and specific is None:
        reader.fail("versions.specific", 'is required when policy = "specific"')
    return AppSpec(
        name=name,
        description=description,
        demo=demo,
        trust_code=trust_code,
        signature=signature,
        handler=handler,
        handler_config=handler_config,
        input=input_spec,
        output=output_spec,
        batching=batching,
        versions=VersionsSpec(policy=policy, specific=specific),
        warmup=WarmupSpec(shapes={name: tuple(shape) for name, shape in shapes.items()}),
        payload_log=payload_log,
        memory=memory,
    )


def _payload_log(reader: TableReader) -> PayloadLogSpec:
    table = reader.table("payload_log", {"sample", "sink", "max_bytes", "redact"})
    sample = reader.number(table, "payload_log.sample", PayloadLogSpec.sample)
    if not 0 <= sample <= 1:
        reader.fail("payload_log.sample", "must be a share of the requests, from 0 to 1")
    sink = reader.get(table, "payload_log.sink", str, PayloadLogSpec.sink)
    if sink != "file" and not sink.startswith(("http://", "https://")):
        reader.fail("payload_log.sink", 'must be "file" or an http(s):// URL')
    redact = reader.get(table, "payload_log.redact", list, [])
    if not all(isinstance(path, str) and path for path in redact):
        reader.fail("payload_log.redact", 'must be a list of dotted field paths ("inputs.meta")')
    return PayloadLogSpec(
        sample=sample,
        sink=sink,
        max_bytes=reader.positive(table, "payload_log.max_bytes", PayloadLogSpec.max_bytes, 16 << 20),
        redact=tuple(redact),
    )
