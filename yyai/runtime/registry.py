"""All ModelUtils of one model store, in one process.

An app is a sub-folder of the store whose name is a valid app name. The
registry loads every app in parallel at start-up (a failing app is recorded and
never stops the others) and picks up folders added later on demand.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .errors import AppNotFound, InputError, ServingError
from .handlers import HandlerSettings
from .limits import DEFAULT_LOAD_WORKERS, DEFAULT_MAX_FILE_BYTES, DEFAULT_SETTLE_SECONDS
from .manifest import BatchingSpec
from .model_util import ModelUtil

log = logging.getLogger(__name__)

APP_NAME_PATTERN = r"[A-Za-z][A-Za-z0-9_-]{0,63}"  # a letter, then letters, digits, _ or -; never a dot
APP_NAME = re.compile(rf"^{APP_NAME_PATTERN}$")


@dataclass(frozen=True)
class Plan:
    """How to load one app: exactly ``version`` (what the other processes serve), or by its pin or policy."""

    version: str | None = None
    pinned: str | None = None


@dataclass(frozen=True)
class RegistryConfig:
    """Settings every ModelUtil of the store shares."""

    store: Path
    settle_seconds: float = DEFAULT_SETTLE_SECONDS
    batching_defaults: BatchingSpec = BatchingSpec()
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    load_workers: int = DEFAULT_LOAD_WORKERS
    handlers: HandlerSettings = field(default_factory=HandlerSettings)  # shared: call_app is installed later


class Registry:
    """Name -> ModelUtil for one model store. Thread-safe."""

    def __init__(self, config: RegistryConfig):
        self.config = config
        self.store = Path(config.store)
        self._apps: dict[str, ModelUtil] = {}
        self._lock = threading.Lock()

    def app_dirs(self) -> list[Path]:
        """App folders present in the store now, sorted by name (creates the store if missing)."""
        self.store.mkdir(parents=True, exist_ok=True)
        return sorted((p for p in self.store.iterdir() if p.is_dir() and APP_NAME.match(p.name)),
                      key=lambda p: p.name)

    def load_all(self, plans: dict[str, Plan] | None = None) -> dict[str, float]:
        """Load every app of the store in parallel; returns seconds per app (failures are logged).

        ``plans`` may say, per app, the exact version to load (what the other
        processes serve) and the pin to keep; an app without one chooses its version.
        """
        utils = [self._util(p.name) for p in self.app_dirs()]
        plans = plans or {}
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=max(1, self.config.load_workers), thread_name_prefix="load") as pool:
            timings = dict(zip((u.name for u in utils),
                               pool.map(lambda u: self._load_one(u, plans.get(u.name, Plan())), utils)))
        log.info("loaded %d apps in %.1f s", len(utils), time.perf_counter() - started)
        return timings

    def get(self, name: str) -> ModelUtil:
        """The app's ModelUtil; AppNotFound if no such folder exists in the store."""
        with self._lock:
            util = self._apps.get(name)
        if util is not None:
            return util
        if not APP_NAME.match(name) or not (self.store / name).is_dir():
            raise AppNotFound(f"no model app named '{name}'")
        return self._util(name)

    def app_dir(self, name: str) -> Path:
        """The folder app ``name`` lives (or would live) in; InputError for an invalid name."""
        if not APP_NAME.match(name):
            raise InputError(f"'{name}' is not a valid app name (a letter, then letters, digits, _ or -)")
        return self.store / name

    def names(self) -> list[str]:
        """Names of the apps on disk and the ones already known."""
        with self._lock:
            known = set(self._apps)
        return sorted(known | {p.name for p in self.app_dirs()})

    def all(self) -> list[ModelUtil]:
        """Every app's ModelUtil, sorted by name."""
        return [self.get(name) for name in self.names()]

    def _util(self, name: str) -> ModelUtil:
        with self._lock:
            if name not in self._apps:
                cfg = self.config
                self._apps[name] = ModelUtil(self.store / name, settle_seconds=cfg.settle_seconds,
                                             batching_defaults=cfg.batching_defaults,
                                             max_file_bytes=cfg.max_file_bytes, handlers=cfg.handlers)
            return self._apps[name]

    @staticmethod
    def _load_one(util: ModelUtil, plan: "Plan") -> float:
        started = time.perf_counter()
        try:
            if plan.version:
                report = util.follow(plan.version, pinned=plan.pinned)
            else:
                report = util.reload(plan.pinned)
        except ServingError as exc:
            log.error("app %s: not loaded: %s", util.name, exc.message)
            return time.perf_counter() - started
        for model in report.models:
            log.info("app %s: %s loaded in %.0f ms, warmed up in %.0f ms (%d params)", util.name, model["name"],
                     model["load_ms"], model["warmup_ms"], model["params"])
        return time.perf_counter() - started
