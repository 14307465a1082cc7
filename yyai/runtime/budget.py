"""A worker's memory budget for models: which apps stay loaded, which wait on standby, which are unloaded.

Contract (``YYAI_MEMORY_BUDGET``; no limit by default, and then nothing here changes what loads):

* The budget bounds the memory of the loaded models of one process: the sum of
  what each app's versions measured at load (the resident set grown while
  its models loaded and warmed up, at least their files' size). The process's
  own baseline (Python, Django, TensorFlow's runtime) is not counted; what the
  process really holds is :func:`yyai.runtime.process_memory.process_memory`.
* Under a limit, loads run one at a time, all in one thread (so each measures
  only itself, in one heap arena: glibc gives each thread its own, and a first
  load in a new thread grows a new one by several MiB).
  Before a load the budget makes room: it unloads the least recently used
  apps, lowest ``[memory] priority`` first, never a pinned one, one with
  requests in flight or one reloading; it waits up to half of ``wait_seconds``
  for such apps to go idle, then refuses (:class:`NoRoom`, a 503 with Retry-After).
* An app unloaded to make room is on standby: it keeps the exact version it
  served, and its next request loads that version and waits for it
  (:meth:`MemoryBudget.demand`), up to ``wait_seconds``, then 503 with
  Retry-After while the load goes on.
* While the registry fills the budget at start-up (:meth:`MemoryBudget.filling`)
  nothing is unloaded: an app that does not fit is put on standby instead.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Callable, Iterator, Protocol, TypeVar

from .errors import AppNotAvailable, ServingError
from .manifest import MemorySpec
from .process_memory import Retired, release_when_idle

log = logging.getLogger(__name__)
T = TypeVar("T")

FAILED_LOAD_PAUSE_SECONDS = 5.0  # a load on demand that failed is not tried again for this long
waited_ms: ContextVar[float | None] = ContextVar("yyai_load_waited_ms", default=None)  # this request's wait


class Tenant(Protocol):
    """What the budget holds and unloads: one app's ModelUtil (or one of its labelled versions')."""

    name: str
    memory: MemorySpec
    last_used: float

    def evict(self) -> Retired | None: ...

    def load_standby(self) -> bool: ...


class NoRoom(AppNotAvailable):
    """The budget cannot make room for a load: the other apps are pinned or busy, or the app alone exceeds it."""

    code = "memory_budget_full"


class AppOnStandby(AppNotAvailable):
    """The app is on standby and this caller (an event loop) must not wait for its load: answer elsewhere."""


@dataclass
class AppCounts:
    """What the budget did to one app in this process, since it started."""

    evictions: int = 0
    demand_loads: int = 0


class MemoryBudget:
    """The model memory one process may hold (``limit`` bytes; None: unlimited). Thread-safe."""

    def __init__(self, limit: int | None = None, *, wait_seconds: float = 30.0):
        self.limit = limit
        self.wait_seconds = wait_seconds
        self.counts: dict[str, AppCounts] = {}
        self._held: dict[Tenant, int] = {}  # resident ModelUtils (an app's, or one of its labelled versions')
        self._measured: dict[tuple[str, str], int] = {}  # (app, version) -> bytes its load took
        self._ratios: deque[float] = deque(maxlen=101)  # bytes each recent load took per byte of its files
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()  # under a limit, one load at a time
        self._filling = False
        self._loads: dict[str, Future] = {}
        self._failed: dict[str, tuple[float, str]] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="load-on-demand")
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-loader")  # used inside room()

    @property
    def limited(self) -> bool:
        return self.limit is not None

    def used(self) -> int:
        """Bytes the resident apps' versions hold, as measured at their load."""
        with self._lock:
            return sum(self._held.values())

    def held(self, name: str) -> int:
        """Bytes app ``name``'s loaded versions hold here."""
        with self._lock:
            return sum(held for util, held in self._held.items() if util.name == name)

    # -- loads ------------------------------------------------------------
    @contextmanager
    def filling(self) -> Iterator[None]:
        """Start-up: while inside, a load that does not fit puts its app on standby instead of unloading others."""
        self._filling = True
        try:
            yield
        finally:
            self._filling = False

    @contextmanager
    def room(self, util: Tenant, need: int) -> Iterator[None]:
        """Held while ``util`` loads a version estimated at ``need`` bytes: room made first (NoRoom if it
        cannot be made), and loads serialized, under a limit; nothing at all without one."""
        if self.limit is None:
            yield
            return
        with self._load_lock:
            self._make_room(util, need)
            yield

    def run_load(self, load: Callable[[], T]) -> T:
        """``load()`` (a version's models loading, inside :meth:`room`), in the one loader thread under a limit;
        in this thread without one."""
        if self.limit is None:
            return load()
        return self._loader.submit(load).result()

    def estimate(self, app: str, version: str, file_bytes: int) -> int:
        """Bytes a load of ``version`` of ``app`` will take: what it measured before, else its files' size
        times the median of what recent loads here took per byte of file (the median: a process's first
        load also grows the allocator's pools, several times its own size), at least 1 (it holds its weights)."""
        with self._lock:
            known = self._measured.get((app, version))
            ratio = statistics.median(self._ratios) if self._ratios else 1.0
        return known if known is not None else int(file_bytes * max(1.0, ratio))

    def holds(self, util: Tenant, version: str, measured: int, file_bytes: int) -> None:
        """``util`` serves ``version``, whose files of ``file_bytes`` measured ``measured`` bytes at load (its
        previous version is retiring)."""
        with self._lock:
            self._held[util] = measured
            if (util.name, version) not in self._measured:
                self._measured[(util.name, version)] = measured
                if file_bytes:
                    self._ratios.append(measured / file_bytes)
        if self.limit is not None and not self._filling:
            self._evict_for(util, 0, wait=False)  # the measure came out above the estimate

    def released(self, util: Tenant) -> None:
        """``util`` serves nothing any more (unloaded, or gone)."""
        with self._lock:
            self._held.pop(util, None)

    def _make_room(self, util: Tenant, need: int) -> None:
        pinned = util.memory.pinned
        if self._filling and self._free() < need and not pinned:
            raise NoRoom(
                f"app '{util.name}' (about {mib(need)}) does not fit in the memory budget at start-up; "
                f"it loads on its first request"
            )
        if not pinned and need > self.limit - self._pinned(util):
            raise NoRoom(
                f"app '{util.name}' needs about {mib(need)}, more than the memory budget ({mib(self.limit)}) "
                f"leaves beside the pinned apps ({mib(self._pinned(util))}); raise YYAI_MEMORY_BUDGET",
                retry_after=60,
            )
        if not self._evict_for(util, need, wait=not pinned) and not pinned:
            raise NoRoom(
                f"no room in the memory budget ({mib(self.limit)}) for app '{util.name}' (about {mib(need)}): "
                f"the loaded apps are in use; retry",
                retry_after=max(1, int(self.wait_seconds)),
            )
        if pinned and self._free() < need:
            log.warning(
                "app %s is pinned: loaded although the memory budget (%s) is exceeded", util.name, mib(self.limit)
            )

    def _free(self) -> int:
        return self.limit - self.used()

    def _evict_for(self, util: Tenant, need: int, *, wait: bool) -> bool:
        """Unload idle apps (lowest priority, least recently used first) until ``need`` more bytes fit; True
        when they fit, waiting up to ``wait_seconds`` for busy apps to go idle when ``wait``."""
        deadline = time.monotonic() + (self.wait_seconds / 2 if wait else 0.0)
        while True:
            if self._free() >= need:
                return True
            with self._lock:
                others = [u for u in self._held if u is not util and not u.memory.pinned]
            for other in sorted(others, key=lambda u: (u.memory.priority, u.last_used)):
                retired = other.evict()
                if retired is None:
                    continue  # in use or reloading: never unloaded then
                with self._lock:
                    self._held.pop(other, None)
                    self.counts.setdefault(other.name, AppCounts()).evictions += 1
                log.info(
                    "app %s: version %s unloaded to make room for %s (memory budget %s)",
                    other.name,
                    retired.id,
                    util.name,
                    mib(self.limit),
                )
                release_when_idle(retired)
                if self._free() >= need:
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def _pinned(self, util: Tenant) -> int:
        """Bytes the other pinned apps hold (never unloaded)."""
        with self._lock:
            return sum(held for u, held in self._held.items() if u.memory.pinned and u is not util)

    # -- loads on demand --------------------------------------------------
    def demand(self, util: Tenant) -> None:
        """Load ``util``'s standby version for this request and wait for it, up to ``wait_seconds``
        (AppNotAvailable with Retry-After past it, the load going on). On an event loop, start the load and
        raise AppOnStandby at once: the caller answers from a thread instead."""
        failed = self._failed.get(util.name)
        if failed is not None and time.monotonic() < failed[0]:
            raise AppNotAvailable(failed[1], retry_after=int(FAILED_LOAD_PAUSE_SECONDS))
        started = time.perf_counter()
        with self._lock:
            load = self._loads.get(util.name)
            if load is None:
                load = self._loads[util.name] = self._pool.submit(self._load_on_demand, util)
        if _on_event_loop():
            raise AppOnStandby(f"app '{util.name}' is on standby; its load has started")
        try:
            load.result(timeout=self.wait_seconds)
        except FutureTimeout:
            raise AppNotAvailable(
                f"app '{util.name}' is loading on demand (memory budget); retry", retry_after=2
            ) from None
        finally:
            waited_ms.set(round((time.perf_counter() - started) * 1000, 2))

    def _load_on_demand(self, util: Tenant) -> None:
        try:
            if util.load_standby():
                with self._lock:
                    self.counts.setdefault(util.name, AppCounts()).demand_loads += 1
        except NoRoom:  # not the version's fault: the next request tries again
            raise
        except ServingError as exc:
            message = f"app '{util.name}' could not be loaded on demand: {exc.message}"
            self._failed[util.name] = (time.monotonic() + FAILED_LOAD_PAUSE_SECONDS, message)
            raise AppNotAvailable(message, retry_after=int(FAILED_LOAD_PAUSE_SECONDS)) from None
        else:
            self._failed.pop(util.name, None)
        finally:
            with self._lock:
                self._loads.pop(util.name, None)


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def mib(size: int | None) -> str:
    return "unlimited" if size is None else f"{size / 2**20:.1f} MiB"
