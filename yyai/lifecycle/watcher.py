"""Keep this serving process on every app's target, the version the database says every process serves.

One background thread per serving process:

* it wakes when another process changed a target (:mod:`yyai.fleet.wakeup`) or
  every ``YYAI_SYNC_SECONDS`` at the latest, reads every app's generation,
  target and pin (one small query for all apps, never one per request), and
  loads exactly the target of every app that serves something else here:
  a version number, or a flat layout's snapshot id, never a fresh scan;
* a target it cannot load is retried with backoff (1 s, 2 s, 4 s ... 60 s);
  meanwhile it keeps serving what it has, and its heartbeat says why; when it
  serves nothing of the app and the target is gone everywhere, it serves what
  the repository holds now instead (start-up always serves);
* an app marked removed (a reload found it gone from the repository) is
  unloaded here and its heartbeat deleted;
* the versions an app's labels name are served too, each loaded exactly
  (retried every ``ALSO_RETRY_SECONDS`` if it fails), and its routes (labels,
  canary share) follow the database;
* an app on STANDBY (unloaded under the memory budget) is not loaded: a new
  target becomes the version its next request loads, and it counts as serving it;
  an app that serves with no target yet (loaded on its first request) claims it;
* it writes this process's heartbeats (:mod:`yyai.fleet.heartbeats`) on change and when due;
* if ``YYAI_POLL_SECONDS`` is set, it also scans the model store that often and
  reloads, for every process, an app whose chosen version on disk is not the one
  serving (version folders copied in by hand, as TF Serving's file-system poll does).
"""

from __future__ import annotations

import logging
import threading
import time

from django.db import close_old_connections
from django.db.utils import DatabaseError

from yyai import metrics
from yyai.fleet import heartbeats
from yyai.fleet.wakeup import Wakeup
from yyai.models import ModelApp, ReloadEvent
from yyai.runtime.errors import InputError, ServingError, VersionNotFound
from yyai.runtime.process_memory import release_when_idle
from yyai.runtime.registry import Registry
from yyai.runtime.routes import Routes
from yyai.runtime.source import choose_version
from yyai.services.reloads import claim_target, dropped, follow_app, reload_app, serve_what_is_there

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 60.0
ALSO_RETRY_SECONDS = 30.0
ROUTE_FIELDS = ("labels", "canary_percent", "canary_header")  # in the order Routes takes them


class GenerationWatcher:
    """Loads every app's target in this process, retrying with backoff; writes the heartbeats."""

    def __init__(
        self, registry: Registry, *, sync_seconds: float, poll_seconds: float = 0.0, wakeup: Wakeup | None = None
    ):
        self.registry = registry
        self.sync_seconds = sync_seconds
        self.poll_seconds = poll_seconds
        self.wakeup = wakeup
        self._applied: dict[str, int] = {}
        self._retry: dict[str, tuple[float, float]] = {}  # app -> (next attempt, backoff)
        self._also_tried: dict[str, tuple[int, float]] = {}  # app -> (generation, monotonic time) of the last try
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_poll = 0.0

    # -- bookkeeping ----------------------------------------------------
    def mark_applied(self, name: str, generation: int) -> None:
        """This process serves ``generation`` of ``name`` already (it did the reload itself)."""
        with self._lock:
            self._applied[name] = max(generation, self._applied.get(name, 0))
            self._retry.pop(name, None)

    def applied(self, name: str) -> int:
        with self._lock:
            return self._applied.get(name, 0)

    # -- thread ---------------------------------------------------------
    def start(self) -> None:
        if self._thread is None and self.sync_seconds > 0:
            self._thread = threading.Thread(target=self._run, name="generation-watcher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.wakeup is not None:
            self.wakeup.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.wakeup is not None:
                self.wakeup.wait(self.sync_seconds)
            elif self._stop.wait(self.sync_seconds):
                return
            if self._stop.is_set():
                return
            try:
                self.tick()
            except DatabaseError as exc:  # the database may be briefly away; keep serving, try again
                log.warning("generation sync: database error: %s", exc)
            except Exception:  # never let the watcher die silently
                log.exception("generation sync failed")
            finally:
                close_old_connections()

    # -- one pass -------------------------------------------------------
    def tick(self) -> list[str]:
        """Load every target this process does not serve yet; returns the apps loaded successfully."""
        loaded = []
        beats = heartbeats.beats()
        for name, generation, target, pinned, removed, *routes in ModelApp.objects.values_list(
            "name", "generation", "target_version", "pinned_version", "removed_at", *ROUTE_FIELDS
        ):
            if removed is not None:
                self._unload(name, generation)
                continue
            try:
                util = self.registry.get(name)
            except ServingError:  # AppNotFound, or the repository cannot say (RepositoryUnavailable)
                continue
            self._follow_routes(name, generation, target, _routes(name, *routes))
            current = util.current
            if util.on_standby:
                if target and util.version_id != target and not util.stand_by(target, pinned=pinned or None):
                    continue  # loaded on demand meanwhile: followed at the next pass
                self.mark_applied(name, generation)
                beats.set(name, version=util.version_id or "", generation=generation, error="")
                continue
            if not target and current is not None:  # loaded on its first request (a standby app at start-up)
                if self._due(name, generation):
                    self._claim(name, generation)
                continue
            if not target and current is None and util.expected:  # its first load failed, or it is new here
                if self._due(name, generation) and self._claim(name, generation):
                    loaded.append(name)
                continue
            if not target or (current is not None and current.id == target):
                util.pinned = (pinned or None) if target else util.pinned
                self.mark_applied(name, generation)
                beats.set(name, version=current.id if current else "", generation=generation, error="")
            elif self._due(name, generation) and self._follow(name, target, pinned or None, generation):
                loaded.append(name)
        if self.poll_seconds > 0 and time.monotonic() >= self._next_poll:
            self._next_poll = time.monotonic() + self.poll_seconds
            loaded += [n for n in self._changed_on_disk() if n not in loaded and self._reload(n)]
        for util in self.registry.known():
            beats.set(util.name, resident=util.current is not None, memory=util.budget.held(util.name))
        metrics.observe_memory(self.registry)
        beats.write()
        return loaded

    def _follow_routes(self, name: str, generation: int, target: str, routes: Routes) -> None:
        """Serve the versions ``routes`` label besides ``target`` and route by them (a version that fails to
        load is retried when the generation moves, or every ALSO_RETRY_SECONDS)."""
        self.registry.set_routes(name, routes)
        wanted = routes.versions - {target}
        served = set(self.registry.also(name))
        tried_generation, tried_at = self._also_tried.get(name, (-1, 0.0))
        if wanted != served and (generation > tried_generation or time.monotonic() - tried_at > ALSO_RETRY_SECONDS):
            self._also_tried[name] = (generation, time.monotonic())
            failed = self.registry.serve_also(name, wanted)
            served = set(self.registry.also(name))
            for version, exc in failed.items():
                log.warning("app %s: cannot serve labelled version %s: %s", name, version, exc.message)
            if failed:
                heartbeats.beats().set(
                    name, error="; ".join(f"labelled version {v}: {e.message}" for v, e in failed.items())
                )
        heartbeats.beats().set(name, also=served)

    def _unload(self, name: str, generation: int) -> None:
        """``name`` was removed at ``generation``: forget it here (once)."""
        if generation > self.applied(name):
            release_when_idle(self.registry.forget(name))
            dropped(name, generation)

    def _due(self, name: str, generation: int) -> bool:
        """A new generation is due at once; a target that failed here, when its backoff has passed."""
        with self._lock:
            if generation > self._applied.get(name, 0):
                return True
            next_attempt, _ = self._retry.get(name, (0.0, 0.0))
            return time.monotonic() >= next_attempt

    def _follow(self, name: str, target: str, pinned: str | None, generation: int) -> bool:
        with self._lock:
            first = name not in self._retry or generation > self._applied.get(name, 0)
        try:
            try:
                follow_app(app=name, version=target, pinned=pinned, generation=generation, record=first)
            except VersionNotFound:
                if self.registry.get(name).current is not None:
                    raise  # it keeps serving what it has; the fleet status shows it lagging
                serve_what_is_there(app=name, lost=target, generation=generation)
        except ServingError as exc:
            self._back_off(name, generation, f"cannot load target {target}", exc)
            return False
        self.mark_applied(name, generation)
        return True

    def _claim(self, name: str, generation: int) -> bool:
        """An app the operator declared (a model or an app.toml in its folder) that has no target and serves
        nothing here: load what its folder holds and make that every process's target (start-up always
        serves: a first load that failed, say while the repository was away, is retried with backoff)."""
        util = self.registry.get(name)
        try:
            if util.current is None:
                util.load()
            claimed, _, _ = claim_target(util)
        except ServingError as exc:
            self._back_off(name, generation, "serves nothing and cannot load what its folder holds", exc)
            return False
        self.mark_applied(name, claimed)
        return True

    def _back_off(self, name: str, generation: int, what: str, exc: ServingError) -> None:
        with self._lock:
            _, backoff = self._retry.get(name, (0.0, 0.0))
            backoff = min(MAX_BACKOFF_SECONDS, max(1.0, backoff * 2))
            self._retry[name] = (time.monotonic() + backoff, backoff)
            self._applied[name] = max(generation, self._applied.get(name, 0))
        log.warning("app %s: %s (retry in %.0f s): %s", name, what, backoff, exc.message)

    def _changed_on_disk(self) -> list[str]:
        """Apps whose version on disk (by policy and pin) differs from the one serving here."""
        changed = []
        for util in self.registry.all():
            current = util.current
            if current is None or (util.pinned is not None and util.source.is_snapshot(util.pinned)):
                continue  # nothing serves (yet, or on standby), or pinned to a snapshot: the disk does not matter
            try:
                wanted = choose_version(
                    util.source.candidates(settle_seconds=util.settle_seconds),
                    policy=current.spec.versions,
                    pinned=util.pinned,
                )
            except (ServingError, OSError):  # nothing complete, or the repository is away: nothing to poll now
                continue
            if wanted.id != current.id:
                changed.append(util.name)
        return changed

    def _reload(self, name: str) -> bool:
        """A poll found a new version on disk: load it here and make it every process's target."""
        try:
            reload_app(app=name, trigger=ReloadEvent.Trigger.POLL, wait_fleet=False)
        except ServingError:
            return False
        return True


def _routes(app: str, labels, canary_percent: int, canary_header: str) -> Routes:
    """The app's routes as the database holds them; none, with a warning, if they do not make sense (a row
    edited by hand)."""
    try:
        return Routes(labels or {}, canary_percent, canary_header)
    except (InputError, AttributeError, TypeError) as exc:
        log.warning("app %s: its labels in the database are ignored: %s", app, getattr(exc, "message", exc))
        return Routes()
