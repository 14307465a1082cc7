"""Keep every worker process (and host) serving what the database says.

One background thread per serving process:

* every ``YYAI_SYNC_SECONDS`` it reads each app's ``generation`` and pinned
  version (one small query for all apps, never one per request) and reloads,
  availability-preserving, every app whose generation rose since this process
  last applied it;
* if ``YYAI_POLL_SECONDS`` is set, it also scans the model store that often and
  reloads an app whose chosen version on disk is not the one serving (version
  folders copied in by hand, as TF Serving's file-system poll does).

A process that performs a reload itself marks the new generation as applied,
so it does not reload twice.
"""
from __future__ import annotations

import logging
import threading
import time

from django.db import close_old_connections
from django.db.utils import DatabaseError

from yyai.models import ModelApp, ReloadEvent
from yyai.runtime.errors import ServingError, VersionNotFound
from yyai.runtime.model_util import LATEST
from yyai.runtime.registry import Registry
from yyai.runtime.source import choose_version, scan_versions
from yyai.services import reload_app

log = logging.getLogger(__name__)


class GenerationWatcher:
    """Applies raised generations (and optionally new folders on disk) in this process."""

    def __init__(self, registry: Registry, *, sync_seconds: float, poll_seconds: float = 0.0):
        self.registry = registry
        self.sync_seconds = sync_seconds
        self.poll_seconds = poll_seconds
        self._applied: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_poll = 0.0

    # -- bookkeeping ----------------------------------------------------
    def mark_applied(self, name: str, generation: int) -> None:
        """This process already serves ``generation`` of ``name`` (it did the reload itself)."""
        with self._lock:
            self._applied[name] = max(generation, self._applied.get(name, 0))

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

    def _run(self) -> None:
        while not self._stop.wait(self.sync_seconds):
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
        """Reload what changed; returns the names of the apps reloaded successfully.

        A raised generation counts as applied even when its reload fails here:
        the failure is recorded once and the old version keeps serving; the
        next accepted reload raises the generation again.
        """
        reloaded = []
        for name, generation, pinned in ModelApp.objects.values_list("name", "generation", "pinned_version"):
            if generation > self.applied(name):
                self.mark_applied(name, generation)
                if self._reload(name, pinned or LATEST, ReloadEvent.Trigger.SYNC):
                    reloaded.append(name)
        if self.poll_seconds > 0 and time.monotonic() >= self._next_poll:
            self._next_poll = time.monotonic() + self.poll_seconds
            reloaded += [n for n in self._changed_on_disk() if n not in reloaded
                         and self._reload(n, None, ReloadEvent.Trigger.POLL)]
        return reloaded

    def _changed_on_disk(self) -> list[str]:
        """Apps whose version on disk (by policy and pin) differs from the one serving here."""
        changed = []
        for util in self.registry.all():
            current = util.current
            if current is None:
                continue
            try:
                wanted = choose_version(scan_versions(util.app_dir, settle_seconds=util.settle_seconds),
                                        policy=current.spec.versions, pinned=util.pinned)
            except (VersionNotFound, OSError):
                continue
            if wanted.id != current.id:
                changed.append(util.name)
        return changed

    def _reload(self, name: str, version: str | None, trigger: str) -> bool:
        """Follow a reload made elsewhere: recorded either way, never announced again."""
        try:
            reload_app(app=name, version=version, trigger=trigger, announce=False)
        except ServingError:
            return False
        return True
