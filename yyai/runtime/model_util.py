"""ModelUtil: the one runtime object per model app (TF Serving's "manager" for one servable stream).

Guarantees:

* **Isolation.** A ModelUtil owns its models, each with its own compiled graph;
  nothing process-global in Keras/TF is touched, so loading, reloading or
  breaking one app never disturbs another.
* **Availability-preserving swap.** A new version is loaded and warmed up
  completely before it replaces the serving one, in one reference assignment.
* **No mixed responses.** A request takes the serving version once
  (:meth:`ModelUtil.serving`) and runs every step on it; requests in flight
  finish on the version they started with, which is dropped after them.
* **Failed reloads are harmless.** The old version keeps serving; the error is
  recorded and shown by :meth:`ModelUtil.status`.
* **Serialized reloads.** Reloads of one app run one at a time; they never block
  predictions or other apps.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from . import postprocess
from .errors import AppNotAvailable, ModelLoadError, ReloadInProgress, ServingError
from .loader import DEFAULT_MAX_FILE_BYTES, LoadedModel, load_model_file
from .manifest import MANIFEST_NAME, AppSpec, BatchingSpec, load_manifest
from .servable import ServingVersion, State
from .source import DEFAULT_SETTLE_SECONDS, choose_version, scan_versions

log = logging.getLogger(__name__)

LATEST = "latest"


@dataclass(frozen=True)
class ReloadReport:
    """What a load or reload did."""

    app: str
    old_version: str | None
    new_version: str
    load_seconds: float
    models: list[dict]


@dataclass
class _Failure:
    version: str | None
    error: str
    at: float = field(default_factory=time.time)


class ModelUtil:
    """Holds and serves one model app. Thread-safe; see the module docstring."""

    def __init__(
        self,
        app_dir: Path,
        *,
        settle_seconds: float = DEFAULT_SETTLE_SECONDS,
        batching_defaults: BatchingSpec | None = None,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    ):
        self.app_dir = Path(app_dir)
        self.name = self.app_dir.name
        self.settle_seconds = settle_seconds
        self.batching_defaults = batching_defaults
        self.max_file_bytes = max_file_bytes
        self.pinned: str | None = None
        self._current: ServingVersion | None = None
        self._loading: str | None = None
        self._failure: _Failure | None = None
        self._reload_lock = threading.Lock()

    # -- serving --------------------------------------------------------
    @property
    def current(self) -> ServingVersion | None:
        return self._current

    @contextmanager
    def serving(self) -> Iterator[ServingVersion]:
        """The serving version, held for the whole request; AppNotAvailable if there is none."""
        while True:
            version = self._current
            if version is None:
                detail = f": {self._failure.error}" if self._failure else " yet"
                raise AppNotAvailable(f"app '{self.name}' has no available version{detail}")
            if version.enter():  # False only if swapped out between the read and here
                break
        try:
            yield version
        finally:
            version.leave()

    def predict(self, batch: np.ndarray) -> tuple[str, list[np.ndarray]]:
        """Run every model on a ready batch; returns (version id, one output per model)."""
        with self.serving() as version:
            return version.id, version.infer(batch)

    # -- loading --------------------------------------------------------
    def load(self) -> ReloadReport:
        """First load (same as :meth:`reload` with no pin change)."""
        return self.reload()

    def reload(self, version: str | int | None = None, *, wait: bool = True) -> ReloadReport:
        """Load a version from disk and swap it in once warm.

        ``version``: None keeps the current pin (or policy), a number pins that
        version, ``"latest"`` removes the pin. Raises ServingError (the old
        version keeps serving) or ReloadInProgress when ``wait`` is False and
        another reload of this app is running.
        """
        if not self._reload_lock.acquire(blocking=wait):
            raise ReloadInProgress(f"a reload of app '{self.name}' is already running")
        try:
            pinned = self.pinned if version is None else (None if str(version) == LATEST else str(version))
            return self._reload_locked(pinned)
        finally:
            self._reload_lock.release()

    def _reload_locked(self, pinned: str | None) -> ReloadReport:
        started = time.perf_counter()
        old = self._current
        wanted: str | None = pinned
        try:
            base = load_manifest(self.app_dir, batching_defaults=self.batching_defaults)
            candidate = choose_version(scan_versions(self.app_dir, settle_seconds=self.settle_seconds),
                                       policy=base.versions, pinned=pinned)
            wanted = candidate.id
            spec = manifest_for(self.app_dir, Path(candidate.path), base=base,
                                batching_defaults=self.batching_defaults)
            self._loading = candidate.id
            models = tuple(load_model_file(Path(f), trust_code=spec.trust_code, max_file_bytes=self.max_file_bytes)
                           for f in candidate.files)
            check_compatible(spec, models)
            new = ServingVersion(spec, candidate, models, time.perf_counter() - started)
        except ServingError as exc:
            self._failure = _Failure(version=wanted, error=exc.message)
            log.warning("app %s: reload to %s failed, %s keeps serving: %s", self.name, wanted or "?",
                        old.id if old else "nothing", exc.message)
            raise
        finally:
            self._loading = None
        self._current = new  # the swap: one reference assignment
        self.pinned = pinned
        self._failure = None
        if old is not None:
            old.retire()
        log.info("app %s: version %s AVAILABLE (%d models, %.0f ms)%s", self.name, new.id, len(models),
                 new.load_seconds * 1000, f", replaced {old.id}" if old else "")
        return ReloadReport(app=self.name, old_version=old.id if old else None, new_version=new.id,
                            load_seconds=new.load_seconds, models=[m.describe() for m in models])

    # -- status ---------------------------------------------------------
    @property
    def state(self) -> State:
        """AVAILABLE when a version serves; else LOADING, FAILED or START."""
        if self._current is not None:
            return State.AVAILABLE
        if self._loading is not None:
            return State.LOADING
        return State.FAILED if self._failure else State.START

    def status(self) -> dict:
        """JSON-ready state of the app: serving version, versions on disk, last error."""
        current = self._current
        failure = self._failure
        try:
            candidates = scan_versions(self.app_dir, settle_seconds=self.settle_seconds)
        except OSError:
            candidates = []
        versions = []
        for c in candidates:
            if current is not None and c.id == current.id:
                state = State.AVAILABLE
            elif c.id == self._loading:
                state = State.LOADING
            elif failure is not None and c.id == failure.version:
                state = State.FAILED
            else:
                state = State.START
            versions.append({"version": c.id, "state": state.value, "complete": c.complete,
                             "reason": c.reason, "files": [Path(f).name for f in c.files]})
        spec = current.spec if current else None
        return {
            "name": self.name,
            "state": self.state.value,
            "version": current.id if current else None,
            "pinned": self.pinned,
            "description": spec.description if spec else "",
            "demo": spec.demo if spec else False,
            "models": [m.describe() for m in current.models] if current else [],
            "versions": versions,
            "last_error": failure.error if failure else None,
            "last_error_at": failure.at if failure else None,
        }


def manifest_for(app_dir: Path, version_dir: Path, *, base: AppSpec,
                 batching_defaults: BatchingSpec | None = None) -> AppSpec:
    """The manifest a version serves with: its own ``app.toml`` if it has one, else the app's.

    The version policy always comes from the app's manifest (``base``).
    """
    if Path(version_dir) == Path(app_dir) or not (Path(version_dir) / MANIFEST_NAME).is_file():
        return base
    own = load_manifest(version_dir, batching_defaults=batching_defaults, name=base.name)
    return dataclasses.replace(own, versions=base.versions)


def check_compatible(spec: AppSpec, models: tuple[LoadedModel, ...]) -> None:
    """All models of a version share one input shape, and the manifest fits them."""
    first = models[0]
    for model in models[1:]:
        if model.input_shape != first.input_shape:
            raise ModelLoadError(model.path, f"input shape {model.input_shape} differs from {first.name}'s "
                                             f"{first.input_shape}; the models of one app share one input")
    if spec.input.size is not None and len(first.input_shape) == 3:
        width, height = spec.input.size
        if (height, width) != first.input_shape[:2]:
            raise ModelLoadError(first.path, f"app.toml input.size {list(spec.input.size)} (width, height) does not "
                                             f"match the model's input {first.input_shape[1]}x{first.input_shape[0]}")
    for model in models:
        kind = postprocess.infer_kind(spec.output, model.output_shape)
        postprocess.check_labels(spec.output, model.output_shape, kind)
