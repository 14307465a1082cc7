"""yyai's settings in one namespace, like DRF's ``api_settings``: ``from yyai.conf import yyai_settings``.

``yyai_settings.MAX_BODY_BYTES`` is ``settings.YYAI["MAX_BODY_BYTES"]`` when the
project sets it, else the default below. aiserver/settings.py builds
``settings.YYAI`` from the ``YYAI_*`` environment variables
(:func:`from_environment`): ``YYAI_MAX_BODY_BYTES=1048576`` is ``"MAX_BODY_BYTES"``.

* Each default is written once, here, taken from the runtime's own dataclasses
  and constants where the runtime uses the value.
* Reading settings writes nothing anywhere.
* Renamed settings keep their old names as aliases that log a deprecation
  warning: ``MAX_BATCH`` is ``MAX_ROWS_PER_REQUEST`` (images or instances in one
  request), ``MAX_BATCH_SIZE`` is ``MAX_ROWS_PER_BATCH`` (rows the batcher runs at once).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from yyai.bounded_json import DEFAULT_MAX_DEPTH
from yyai.environment import parse_bool, parse_float, parse_int, parse_list
from yyai.runtime import limits
from yyai.runtime.manifest import BatchingSpec

log = logging.getLogger(__name__)

BASE_DIR = Path(__file__).resolve().parent.parent
KiB, MiB, GiB = 1024, 1024**2, 1024**3
PERMISSIONS = ("any", "authenticated", "staff")


def _ram_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


@dataclass(frozen=True)
class Setting:
    """One setting: its default (a value, or a function of nothing for what depends on the machine) and how
    its environment variable reads."""

    name: str
    default: Any
    parse: Callable[[str], Any]
    doc: str

    def default_value(self) -> Any:
        return self.default() if callable(self.default) else self.default


def _path(raw: str) -> Path:
    return Path(raw).resolve()


def _store(raw: str) -> Path | str:
    """A local folder (resolved), or an ``s3://bucket/prefix`` URL kept as it is (checked when it is opened)."""
    return raw.strip() if raw.strip().startswith("s3://") else Path(raw).resolve()


def _optional_path(raw: str) -> Path | None:
    return Path(raw).resolve() if raw.strip() else None


_SIZE_UNITS = {"": 1, "k": KiB, "m": MiB, "g": GiB, "t": 1024 * GiB}


def _budget(raw: str) -> int | None:
    """Bytes (``2147483648``, ``512M``, ``4G``), a share of the host's memory (``40%``), or ``unlimited``."""
    text = raw.strip().lower().removesuffix("ib").removesuffix("b")
    if text in ("unlimited", "none", "0"):
        return None
    try:
        if text.endswith("%"):
            share = float(text[:-1])
            if not 0 < share <= 100:
                raise ValueError
            return int(_ram_bytes() * share / 100)
        unit = text[-1] if text[-1:] in _SIZE_UNITS else ""
        size = int(float(text[: len(text) - len(unit)]) * _SIZE_UNITS[unit])
    except ValueError:
        raise ValueError('is not a size: use bytes, 512M, 4G, a share of the host memory (40%), "unlimited"') from None
    if size < MiB:
        raise ValueError("must be at least 1M")
    return size


def _int(minimum: int) -> Callable[[str], int]:
    return lambda raw: parse_int(raw, minimum=minimum)


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in choices:
            raise ValueError(f"{raw!r} is not one of {', '.join(choices)}")
        return raw

    return parse


LIMITS, BATCHING = limits.RequestLimits(), BatchingSpec()
SETTINGS = (
    # where things are
    Setting(
        "MODEL_STORE",
        BASE_DIR / "model_store",
        _store,
        "the model store: a folder, or s3://bucket/prefix (AWS_* variables), one folder or prefix per app",
    ),
    Setting(
        "CACHE_DIR",
        None,
        _optional_path,
        "where this host keeps the versions it fetched from an s3:// store (unset: YYAI_DATA_DIR/model-cache)",
    ),
    Setting("IMAGE_ROOT", None, _optional_path, "the folder imgPath may read from (unset: imgPath is refused)"),
    # request limits
    Setting("MAX_BODY_BYTES", 20 * MiB, _int(KiB), "request body (413); a gRPC message; a tensor's declared size"),
    Setting("MAX_UPLOAD_BYTES", GiB, _int(KiB), "body of a version upload (413)"),
    Setting("BODY_TIMEOUT_SECONDS", 30.0, parse_float, "a body must arrive whole within this (408)"),
    Setting("UPLOAD_TIMEOUT_SECONDS", 600.0, parse_float, "a version upload's body must arrive within this (408)"),
    Setting("MAX_JSON_DEPTH", DEFAULT_MAX_DEPTH, _int(8), "JSON nested deeper is refused by every parser (400)"),
    Setting("MAX_IMAGE_BYTES", 10 * MiB, _int(KiB), "one image: an upload, or decoded base64 (413)"),
    Setting("MAX_IMAGE_PIXELS", LIMITS.max_pixels, _int(1), "pixels of one image, from its header (413)"),
    Setting("MAX_REQUEST_PIXELS", LIMITS.max_request_pixels, _int(1), "pixels of all the images of a request (413)"),
    Setting("MAX_ROWS_PER_REQUEST", LIMITS.max_rows, _int(1), "images or instances in one request"),
    Setting(
        "MAX_STRING_ELEMENTS",
        limits.DEFAULT_MAX_STRING_ELEMENTS,
        _int(1),
        "string elements of one request tensor (KServe BYTES, gRPC DT_STRING), from its shape (413)",
    ),
    Setting(
        "CPU_THREADS",
        lambda: max(2, os.cpu_count() or 1),
        _int(1),
        "threads per worker for parsing, base64, decoding and resizing, off the event loop",
    ),
    # batching (an app's [batching] overrides)
    Setting("MAX_ROWS_PER_BATCH", BATCHING.max_batch_size, _int(1), "rows the batcher runs at once"),
    Setting("BATCH_TIMEOUT_MICROS", BATCHING.batch_timeout_micros, _int(0), "how long a batch waits to fill"),
    Setting("MAX_ENQUEUED", BATCHING.max_enqueued, _int(1), "requests one app's queue admits (503 past it)"),
    Setting(
        "MAX_QUEUED_BYTES",
        lambda: min(BATCHING.max_enqueued_bytes, _ram_bytes() // 16),
        _int(MiB),
        "model input one app's queue admits per worker (503 past it)",
    ),
    # models and versions
    Setting(
        "SETTLE_SECONDS",
        limits.DEFAULT_SETTLE_SECONDS,
        parse_float,
        "a numbered version without READY counts once unchanged this long",
    ),
    Setting("MAX_MODEL_FILE_BYTES", limits.DEFAULT_MAX_FILE_BYTES, _int(1), "one model file or SavedModel folder"),
    Setting("LOAD_WORKERS", limits.DEFAULT_LOAD_WORKERS, _int(1), "apps loaded in parallel at start-up"),
    Setting(
        "MEMORY_BUDGET",
        None,
        _budget,
        "model memory per worker (4G, 40% of the host; unset: unlimited): past it, idle apps unload to standby",
    ),
    Setting("LOAD_WAIT_SECONDS", 30.0, parse_float, "a request waits this long for its standby app's load (503)"),
    Setting("VALIDATE_ISOLATED", True, parse_bool, "validate uploads in a child process (off: tests only)"),
    Setting(
        "VALIDATE_TIMEOUT_SECONDS",
        limits.DEFAULT_VALIDATE_TIMEOUT_SECONDS,
        parse_float,
        "the upload validation child's time limit",
    ),
    Setting(
        "VALIDATE_MEMORY_BYTES",
        limits.DEFAULT_VALIDATE_MEMORY_BYTES,
        _int(GiB),
        "the upload validation child's address space",
    ),
    Setting(
        "ALLOW_HANDLERS",
        True,
        parse_bool,
        "run the Python handler an app.toml names (off: such an app fails to load, saying why)",
    ),
    Setting("KEEP_SNAPSHOTS", 3, _int(0), "flat-layout snapshots kept for rollback besides the served ones"),
    Setting("POLL_SECONDS", 0.0, parse_float, "scan the model store for new versions this often (0: off)"),
    # the fleet
    Setting("SYNC_SECONDS", 1.0, parse_float, "how often each process reads the targets when nothing wakes it"),
    Setting("RELOAD_WAIT_SECONDS", 30.0, parse_float, "a reload answers 202 if the fleet has not followed by then"),
    Setting("HEARTBEAT_SECONDS", 2.0, parse_float, "how often each serving process writes its heartbeats"),
    Setting("PROCESS_TIMEOUT_SECONDS", 10.0, parse_float, "a process whose heartbeat is older is not live"),
    # who may do what
    Setting("PREDICT_PERMISSION", "any", _choice(PERMISSIONS), "who may predict: any, authenticated or staff"),
    Setting("FAST_PREDICT", True, parse_bool, "answer predicts on the event loop when Django would answer alike"),
    Setting(
        "TRUSTED_PROXIES",
        (),
        lambda raw: tuple(parse_list(raw)),
        "addresses or networks whose X-Forwarded-Proto and -For are believed (aiserver/proxy.py)",
    ),
    Setting("LOGIN_FAILURES_PER_USER", 10, _int(1), "failed logins before a username is locked out (429)"),
    Setting("LOGIN_FAILURES_PER_CLIENT", 30, _int(1), "failed logins before an address is locked out (429)"),
    Setting("LOGIN_WINDOW_SECONDS", 900, _int(1), "how long failed logins count"),
    Setting("LOG_JSON", False, parse_bool, "one JSON object per log line, and one access line per request"),
    Setting(
        "TRACES",
        "off",
        _choice(("off", "otlp", "console")),
        "OpenTelemetry traces: off, otlp (to OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT) or console (yyai/tracing.py)",
    ),
)
BY_NAME = {setting.name: setting for setting in SETTINGS}
RENAMED = {"MAX_BATCH": "MAX_ROWS_PER_REQUEST", "MAX_BATCH_SIZE": "MAX_ROWS_PER_BATCH"}


def from_environment(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The ``YYAI_*`` variables that are set, parsed: the ``YYAI`` dict of aiserver/settings.py.

    A bad value raises ValueError naming the variable. Old names are kept as
    they are, for :data:`yyai_settings` to warn about when it reads them.
    """
    values = {}
    for name, parse in [
        *((s.name, s.parse) for s in SETTINGS),
        *((old, BY_NAME[new].parse) for old, new in RENAMED.items()),
    ]:
        raw = environ.get(f"YYAI_{name}")
        if raw is None or (raw.strip() == "" and name != "IMAGE_ROOT"):
            continue
        try:
            values[name] = parse(raw)
        except ValueError as exc:
            raise ValueError(f"environment variable YYAI_{name}={raw!r} {exc}") from None
    return values


class YyaiSettings:
    """``settings.YYAI`` over the defaults, read on first use and again when the settings change (tests)."""

    def __init__(self, overrides: Mapping[str, Any] | None = None):
        self._given = overrides
        self._values: dict[str, Any] | None = None

    def __getattr__(self, name: str) -> Any:
        """A setting's value, kept as an attribute after its first read (the hot path reads nine per predict)."""
        if name.startswith("_"):
            raise AttributeError(name)
        values = self._load()
        if name not in values:
            raise AttributeError(f"no yyai setting {name!r}")
        self.__dict__[name] = values[name]
        return values[name]

    def reload(self) -> None:
        self._values = None
        for name in [name for name in self.__dict__ if not name.startswith("_")]:
            del self.__dict__[name]

    def _load(self) -> dict[str, Any]:
        if self._values is None:
            given = self._given if self._given is not None else _project_settings()
            unknown = sorted(set(given) - set(BY_NAME) - set(RENAMED))
            if unknown:
                raise ValueError(f"unknown YYAI setting(s) {', '.join(unknown)}")
            values = {name: setting.default_value() for name, setting in BY_NAME.items()}
            for old, new in RENAMED.items():
                if old in given:
                    log.warning("the setting %s (YYAI_%s) is deprecated: it is %s (YYAI_%s) now", old, old, new, new)
                    values[new] = given[old]
            values.update({name: value for name, value in given.items() if name in BY_NAME})
            self._values = values
        return self._values


def _project_settings() -> Mapping[str, Any]:
    from django.conf import settings

    return getattr(settings, "YYAI", {})


yyai_settings = YyaiSettings()


def _reload_on_change(*, setting: str, **kwargs) -> None:
    if setting == "YYAI":
        yyai_settings.reload()


def connect() -> None:
    """Read the settings again whenever a test changes them (Django's setting_changed)."""
    from django.test.signals import setting_changed

    setting_changed.connect(_reload_on_change)
