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
* **Memory budget.** Every load takes room in the process's :class:`MemoryBudget`
  first. An app unloaded to make room (or that did not fit at start-up) is on
  STANDBY: it keeps the exact version it is to serve, and its next request loads
  that one (:meth:`ModelUtil.serving`), never an older one.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Iterator

from .app_state import Failure, ReloadReport, status_of
from .budget import MemoryBudget, NoRoom
from .errors import (
    AppNotAvailable,
    ReloadInProgress,
    ServingError,
    storage_errors,
    store_relative,
)
from .handlers import HandlerSettings
from .limits import DEFAULT_MAX_FILE_BYTES, DEFAULT_SETTLE_SECONDS
from .loader import model_sizes
from .manifest import BatchingSpec, MemorySpec, load_manifest
from .repository import AppSource
from .repository.local import LocalApp
from .servable import ServingVersion, State
from .source import choose_candidate
from .version_models import demo_checked, load_version_models, version_handler, version_manifest

log = logging.getLogger(__name__)

LATEST = "latest"


class ModelUtil:
    """Holds and serves one model app. Thread-safe; see the module docstring."""

    def __init__(
        self,
        source: AppSource | Path,
        *,
        settle_seconds: float = DEFAULT_SETTLE_SECONDS,
        batching_defaults: BatchingSpec | None = None,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        handlers: HandlerSettings | None = None,
        budget: MemoryBudget | None = None,
    ):
        self.source = source if isinstance(source, AppSource) else LocalApp(Path(source))
        self.app_dir = self.source.folder  # the app-level files: app.toml, labels.txt, the handler, sample.*
        self.handlers = handlers or HandlerSettings()
        self.name = self.source.name
        self.settle_seconds = settle_seconds
        self.batching_defaults = batching_defaults
        self.max_file_bytes = max_file_bytes
        self.pinned: str | None = None
        self.budget = budget or MemoryBudget()
        self.memory = MemorySpec()  # the manifest's [memory], as last read
        self.last_used = 0.0  # monotonic time of the last request: the budget unloads the least recent first
        self._current: ServingVersion | None = None
        self._standby: tuple[str, str | None] | None = None  # (version, pin) the next request loads
        self._loading: str | None = None
        self._failure: Failure | None = None
        self._served_once = False
        self._reload_lock = threading.Lock()

    # -- serving --------------------------------------------------------
    @property
    def current(self) -> ServingVersion | None:
        return self._current

    @contextmanager
    def serving(self) -> Iterator[ServingVersion]:
        """The serving version, held for the whole request (a STANDBY app's loaded first, see
        MemoryBudget.demand); AppNotAvailable if there is none."""
        while True:
            version = self._current
            if version is None:
                if self._standby is not None:
                    self.budget.demand(self)
                    continue
                # the reason is for the operator (status, log), not for every caller
                why = "its last load failed" if self._failure else "it is still loading"
                raise AppNotAvailable(f"app '{self.name}' has no available version: {why}")
            if version.enter():  # False only if swapped out between the read and here
                break
        self.last_used = time.monotonic()
        try:
            yield version
        finally:
            version.leave()

    # -- loading --------------------------------------------------------
    def load(self) -> ReloadReport:
        """First load (same as :meth:`reload` with no pin change)."""
        return self.reload()

    def reload(self, version: str | int | None = None, *, wait: bool = True) -> ReloadReport:
        """Choose a version on disk, load it and swap it in once warm (the process that leads a reload).

        ``version``: None keeps the current pin (or policy), a number or a
        snapshot id pins that version, ``"latest"`` removes the pin. A flat
        layout is frozen into a snapshot first, and the snapshot loads. Raises
        ServingError (the old version keeps serving) or ReloadInProgress when
        ``wait`` is False and another reload of this app is running.
        """
        with self._reload_lock_or_refuse(wait):
            pinned = self.pinned if version is None else (None if str(version) == LATEST else str(version))
            return self._reload_locked(pinned, exact=None)

    def follow(self, version: str, *, pinned: str | None, wait: bool = True) -> ReloadReport:
        """Load exactly ``version`` (a number, or a flat snapshot id), as another process loaded it.

        Nothing is scanned or chosen; ``pinned`` is the pin that process keeps.
        """
        with self._reload_lock_or_refuse(wait):
            return self._reload_locked(pinned, exact=str(version))

    @contextmanager
    def _reload_lock_or_refuse(self, wait: bool) -> Iterator[None]:
        if not self._reload_lock.acquire(blocking=wait):
            raise ReloadInProgress(f"a reload of app '{self.name}' is already running")
        try:
            yield
        finally:
            self._reload_lock.release()

    def _reload_locked(self, pinned: str | None, *, exact: str | None) -> ReloadReport:
        started = time.perf_counter()
        old = self._current
        wanted: str | None = exact or pinned
        try:
            base = load_manifest(self.app_dir, batching_defaults=self.batching_defaults, name=self.name)
            with storage_errors(self.name, "fetching or freezing a version of"):
                candidate = choose_candidate(self.source, base.versions, pinned, exact, self.settle_seconds)
            wanted = candidate.id
            spec = version_manifest(base, candidate, app_dir=self.app_dir, batching_defaults=self.batching_defaults)
            self.memory = base.memory
            file_bytes = sum(model_sizes(candidate.files))
            with self.budget.room(self, self.budget.estimate(self.name, candidate.id, file_bytes)):
                self._loading = candidate.id
                models = self.budget.run_load(partial(load_version_models, spec, candidate, self.max_file_bytes))
                spec = demo_checked(spec, models)
                try:
                    handler = version_handler(spec, candidate, app_dir=self.app_dir, settings=self.handlers)
                except BaseException:
                    for model in models:
                        model.close()
                    raise
            new = ServingVersion(spec, candidate, models, time.perf_counter() - started, handler)
        except NoRoom:  # not the version's fault: it waits on standby if nothing serves
            if old is None and wanted is not None:
                self._standby, self.pinned = (wanted, pinned), pinned
            raise
        except ServingError as exc:
            store_relative(exc, self.app_dir.parent)
            self._failure = Failure(version=wanted, error=exc.message)
            log.warning(
                "app %s: reload to %s failed, %s keeps serving: %s",
                self.name,
                wanted or "?",
                old.id if old else "nothing",
                exc.message,
            )
            raise
        finally:
            self._loading = None
        self._current = new  # the swap: one reference assignment
        self._standby = None
        self._served_once = True
        self.budget.holds(self, new.id, sum(m.memory_bytes for m in models), file_bytes)
        self.pinned = pinned
        self._failure = None
        if old is not None:
            old.retire()
        log.info(
            "app %s: version %s AVAILABLE (%d models, %.0f ms)%s",
            self.name,
            new.id,
            len(models),
            new.load_seconds * 1000,
            f", replaced {old.id}" if old else "",
        )
        return ReloadReport.of(self.name, old, new)

    def unload(self) -> ServingVersion | None:
        """Stop serving (the app is gone from the repository); the retired version, which in-flight requests
        finish on."""
        with self._reload_lock:
            old, self._current, self._standby = self._current, None, None
            self._failure = None
            self._served_once = False
            self.budget.released(self)
        if old is not None:
            old.retire()
            log.info("app %s: unloaded version %s (the app is gone from the repository)", self.name, old.id)
        return old

    # -- memory budget --------------------------------------------------
    def evict(self) -> ServingVersion | None:
        """Unload the serving version to make room, putting the app on STANDBY on it; the retired version, or
        None (nothing unloaded) while it has requests in flight or a reload runs."""
        if not self._reload_lock.acquire(blocking=False):
            return None
        try:
            version = self._current
            if version is None or version.in_flight:
                return None
            self._current, self._standby = None, (version.id, self.pinned)
        finally:
            self._reload_lock.release()
        version.retire()
        return version

    def stand_by(self, version: str, *, pinned: str | None) -> bool:
        """Make ``version`` (another process's target) what this app loads on its next request, when it serves
        nothing here; False when it serves (follow it then)."""
        with self._reload_lock:
            if self._current is not None:
                return False
            self._standby, self.pinned = (version, pinned), pinned
            return True

    def load_standby(self) -> bool:
        """Load the STANDBY version (a request wants it); False when nothing was on standby any more."""
        with self._reload_lock:
            if self._current is not None or self._standby is None:
                return False
            version, pinned = self._standby
            self._reload_locked(pinned, exact=version)
            return True

    @property
    def failure(self) -> Failure | None:
        """Why the last load failed, if it did (cleared by the next one that succeeds)."""
        return self._failure

    @property
    def loading(self) -> str | None:
        """The version being loaded now, if any."""
        return self._loading

    @property
    def on_standby(self) -> bool:
        return self._current is None and self._standby is not None

    @property
    def version_id(self) -> str | None:
        """The version this app serves here: the loaded one, or the one it loads on its next request."""
        current, standby = self._current, self._standby
        return current.id if current is not None else (standby[0] if standby is not None else None)

    # -- status ---------------------------------------------------------
    @property
    def expected(self) -> bool:
        """Whether readiness waits for this app: it served once here, or the operator declared it (an
        ``app.toml``, a model or a numbered folder). An empty folder (a refused upload's) is not waited for."""
        return self._served_once or self.source.declared()

    @property
    def state(self) -> State:
        """AVAILABLE when a version serves; else LOADING, FAILED or START."""
        if self._current is not None:
            return State.AVAILABLE
        if self._loading is not None:
            return State.LOADING
        if self._standby is not None:
            return State.STANDBY
        return State.FAILED if self._failure else State.START

    def status(self) -> dict:
        """JSON-ready state of the app: serving version, versions on disk, last error, memory
        (:func:`app_state.status_of`)."""
        return status_of(self)
