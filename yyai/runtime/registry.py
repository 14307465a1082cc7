"""All ModelUtils of one model store, in one process.

An app is a folder (or key prefix) of the store's repository whose name is a
valid app name (:mod:`yyai.runtime.repository`: a local folder or an S3
bucket). The registry loads every app in parallel at start-up (a failing app is
recorded and never stops the others), picks up apps added later on demand, and
forgets an app that is gone. Under a memory budget (``budget.py``) start-up loads
the apps one at a time, pinned and higher ``[memory] priority`` first, until the
budget is full; the others wait on STANDBY for their first request. An app may
serve more versions besides its target, each held by a ModelUtil of its own
that loads exactly that version (:meth:`Registry.serve_also`); its
:class:`~.routes.Routes` say which requests go to which.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .app_state import ReloadReport
from .budget import MemoryBudget, NoRoom
from .errors import AppNotFound, InputError, ManifestError, ServingError
from .handlers import HandlerSettings
from .limits import DEFAULT_LOAD_WORKERS, DEFAULT_MAX_FILE_BYTES, DEFAULT_SETTLE_SECONDS
from .loader import prime_runtime
from .manifest import BatchingSpec, load_manifest
from .model_util import ModelUtil
from .process_memory import release_when_idle
from .repository import APP_NAME, APP_NAME_PATTERN, AppSource, open_repository
from .routes import Routes
from .servable import ServingVersion

__all__ = ["APP_NAME", "APP_NAME_PATTERN", "LoadResult", "Plan", "Registry", "RegistryConfig"]

log = logging.getLogger(__name__)
NO_ROUTES = Routes()


@dataclass(frozen=True)
class Plan:
    """How to load one app: exactly ``version`` (what the other processes serve), or by its pin or policy."""

    version: str | None = None
    pinned: str | None = None


@dataclass(frozen=True)
class LoadResult:
    """How one app's start-up load went: its report, or the error it failed with."""

    seconds: float
    report: ReloadReport | None = None
    error: ServingError | None = None
    standby: bool = False  # it did not fit in the memory budget: it loads on its first request


@dataclass(frozen=True)
class RegistryConfig:
    """Settings every ModelUtil of the store shares."""

    store: Path | str  # a folder, or s3://bucket/prefix
    cache_dir: Path | None = None  # where a remote store's versions are kept on this host
    settle_seconds: float = DEFAULT_SETTLE_SECONDS
    batching_defaults: BatchingSpec = BatchingSpec()
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    load_workers: int = DEFAULT_LOAD_WORKERS
    handlers: HandlerSettings = field(default_factory=HandlerSettings)  # shared: call_app is installed later
    memory_budget: int | None = None  # bytes of loaded models per process (None: unlimited)
    load_wait_seconds: float = 30.0  # how long a request waits for its app's load on demand


class Registry:
    """Name -> ModelUtil for one model store. Thread-safe."""

    def __init__(self, config: RegistryConfig):
        self.config = config
        self.repository = open_repository(config.store, cache_dir=config.cache_dir)
        self.store = self.repository.location
        self._apps: dict[str, ModelUtil] = {}
        self._also: dict[str, dict[str, ModelUtil]] = {}  # app -> version id -> the ModelUtil serving exactly it
        self._routes: dict[str, Routes] = {}
        self._lock = threading.Lock()
        self._also_lock = threading.Lock()  # serve_also's callers (the watcher, a label change) one at a time
        self.budget = MemoryBudget(config.memory_budget, wait_seconds=config.load_wait_seconds)

    def load_all(self, plans: dict[str, Plan] | None = None) -> dict[str, LoadResult]:
        """Load every app of the store in parallel; how each went (failures are logged, never raised).

        ``plans`` may say, per app, the exact version to load (what the other
        processes serve) and the pin to keep; an app without one chooses its version.
        """
        utils = [self._util(name) for name in self.repository.names()]
        plans = plans or {}
        started = time.perf_counter()
        if self.budget.limited:
            self.budget.run_load(prime_runtime)  # in the thread every load under the budget runs in
            with self.budget.filling():
                results = {u.name: self._load_one(u, plans.get(u.name, Plan())) for u in _by_memory_order(utils)}
        else:
            with ThreadPoolExecutor(max_workers=max(1, self.config.load_workers), thread_name_prefix="load") as pool:
                loads = pool.map(lambda u: self._load_one(u, plans.get(u.name, Plan())), utils)
                results = dict(zip((u.name for u in utils), loads))
        log.info("loaded %d apps in %.1f s", len(utils), time.perf_counter() - started)
        return results

    def get(self, name: str) -> ModelUtil:
        """The app's ModelUtil; AppNotFound if it is neither known here nor in the repository (its listing, a
        few seconds old, or else asked now)."""
        with self._lock:
            util = self._apps.get(name)
        if util is not None:
            return util
        if not APP_NAME.match(name) or (name not in self.repository.names() and not self.repository.app(name).exists()):
            raise AppNotFound(f"no model app named '{name}'")
        return self._util(name)

    def source(self, name: str) -> AppSource:
        """Where app ``name`` lives (or would live) in the repository; InputError for an invalid name."""
        if not APP_NAME.match(name):
            raise InputError(f"'{name}' is not a valid app name (a letter, then letters, digits, _ or -)")
        with self._lock:
            util = self._apps.get(name)
        return util.source if util is not None else self.repository.app(name)

    def forget(self, name: str) -> ServingVersion | None:
        """Unload app ``name`` and forget it (it is gone from the repository); its retired version, if any."""
        self.serve_also(name, set())
        with self._lock:
            util = self._apps.pop(name, None)
            self._routes.pop(name, None)
            self.repository.forget(name)
        return util.unload() if util is not None else None

    # -- several versions of one app --------------------------------------
    def routes(self, name: str) -> Routes:
        with self._lock:
            return self._routes.get(name, NO_ROUTES)

    def set_routes(self, name: str, routes: Routes) -> None:
        """The labels and canary share app ``name``'s requests are routed by (every process has the same)."""
        with self._lock:
            self._routes[name] = routes

    def serve_also(self, name: str, versions: set[str]) -> dict[str, ServingError]:
        """Serve exactly ``versions`` of app ``name`` besides its target: each missing one loaded exactly (a
        version that does not fit the memory budget waits on standby), the others unloaded once idle. The
        versions that failed to load, with their errors (the others still serve)."""
        with self._also_lock:
            return self._serve_also(name, versions)

    def _serve_also(self, name: str, versions: set[str]) -> dict[str, ServingError]:
        with self._lock:
            held = self._also.setdefault(name, {})
            missing, extra = versions - set(held), set(held) - versions
        failed = {}
        for version in sorted(missing):
            util = self._new_util(name)
            try:
                util.follow(version, pinned=None)
            except NoRoom:
                pass  # on standby: its first request loads it
            except ServingError as exc:
                failed[version] = exc
                continue
            with self._lock:
                held[version] = util
        for version in extra:
            with self._lock:
                util = held.pop(version)
            release_when_idle(util.unload())
        return failed

    def also(self, name: str) -> dict[str, ModelUtil]:
        """The versions app ``name`` serves besides its target, by id, each with its ModelUtil."""
        with self._lock:
            return dict(self._also.get(name, {}))

    def names(self) -> list[str]:
        """Names of the apps in the repository and the ones already known."""
        with self._lock:
            known = set(self._apps)
        return sorted(known | set(self.repository.names()))

    def known(self) -> list[ModelUtil]:
        """The ModelUtils of this process (no repository listing), sorted by name."""
        with self._lock:
            return [self._apps[name] for name in sorted(self._apps)]

    def all(self) -> list[ModelUtil]:
        """Every app's ModelUtil, sorted by name."""
        return [self.get(name) for name in self.names()]

    def _util(self, name: str) -> ModelUtil:
        with self._lock:
            if name not in self._apps:
                self._apps[name] = self._new_util(name)
            return self._apps[name]

    def _new_util(self, name: str) -> ModelUtil:
        cfg = self.config
        return ModelUtil(
            self.repository.app(name),
            settle_seconds=cfg.settle_seconds,
            batching_defaults=cfg.batching_defaults,
            max_file_bytes=cfg.max_file_bytes,
            handlers=cfg.handlers,
            budget=self.budget,
        )

    @staticmethod
    def _load_one(util: ModelUtil, plan: "Plan") -> LoadResult:
        started = time.perf_counter()
        try:
            if plan.version:
                report = util.follow(plan.version, pinned=plan.pinned)
            else:
                report = util.reload(plan.pinned)
        except NoRoom as exc:
            log.info("app %s: on standby: %s", util.name, exc.message)
            return LoadResult(time.perf_counter() - started, standby=True)
        except ServingError as exc:
            log.error("app %s: not loaded: %s", util.name, exc.message)
            return LoadResult(time.perf_counter() - started, error=exc)
        for model in report.models:
            log.info(
                "app %s: %s loaded in %.0f ms, warmed up in %.0f ms (%d params)",
                util.name,
                model["name"],
                model["load_ms"],
                model["warmup_ms"],
                model["params"],
            )
        return LoadResult(time.perf_counter() - started, report=report)


def _by_memory_order(utils: list[ModelUtil]) -> list[ModelUtil]:
    """The order start-up fills a memory budget in: pinned apps, then by ``[memory] priority``, then by name."""
    for util in utils:
        try:
            util.memory = load_manifest(util.app_dir, name=util.name).memory
        except (ManifestError, OSError):  # its load says why
            pass
    return sorted(utils, key=lambda u: (not u.memory.pinned, -u.memory.priority, u.name))
