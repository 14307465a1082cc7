"""Reloads: the process that leads one, and the processes that follow it (HackSoft style: keyword-only, typed).

A reload loads the app here, then makes what it loaded the app's target in
the database (a version number, or a flat layout's snapshot id) and raises its
generation; every other process loads exactly that target
(:func:`follow_app`, called by yyai.sync). The reload answers once every live
process serves the target (:mod:`yyai.fleet`), or after
``YYAI_RELOAD_WAIT_SECONDS`` with the processes that lag or failed.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass

from django.db import transaction

from yyai import fleet, metrics, wakeup
from yyai.conf import yyai_settings
from yyai.models import ModelApp, ReloadEvent
from yyai.process_registry import get_registry, mark_applied, release_when_idle
from yyai.runtime import snapshots
from yyai.runtime.errors import ReloadInProgress, ServingError
from yyai.runtime.model_util import ReloadReport

HOST = socket.gethostname()
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReloadOutcome:
    """What a reload did here, the generation it announced, and where the other processes stand."""

    report: ReloadReport
    generation: int
    fleet: fleet.FleetReport | None  # None: not waited for


def reload_app(*, app: str, version: str | int | None = None, user=None, trigger: str = ReloadEvent.Trigger.API,
               wait: bool = True, wait_fleet: bool = True) -> ReloadOutcome:
    """Reload ``app`` here and make what it loaded every process's target; wait for them unless told not to.

    ``version``: None keeps the pin, a number or a snapshot id pins it,
    ``"latest"`` unpins. A failed reload is recorded and re-raised; the old
    version keeps serving everywhere and no target changes.
    """
    util = get_registry().get(app)
    retiring = util.current
    started = time.perf_counter()
    try:
        report = util.reload(version, wait=wait)
    except ReloadInProgress:
        raise
    except ServingError as exc:
        record_reload(app=app, from_version=retiring.id if retiring else "", to_version=str(version or ""),
                      trigger=trigger, user=user, error=exc.message, started=started)
        raise
    with transaction.atomic():
        row, _ = ModelApp.objects.select_for_update().get_or_create(name=app)
        changed = (row.target_version, row.pinned_version) != (report.new_version, util.pinned or "")
        if changed:
            row.generation += 1
            row.target_version, row.pinned_version = report.new_version, util.pinned or ""
            row.save(update_fields=["generation", "target_version", "pinned_version", "updated_at"])
            wakeup.notify_hosts()
        record_reload(app=app, from_version=report.old_version or "", to_version=report.new_version,
                      trigger=trigger, user=user, error="", started=started)
    _served(app, report.new_version, row.generation)
    if changed:
        wakeup.wake(fleet.host_pids())
    release_when_idle(retiring)
    waited = fleet.wait_for(app, version=report.new_version, generation=row.generation,
                            timeout=yyai_settings.RELOAD_WAIT_SECONDS) if wait_fleet else None
    _prune(util.app_dir, app, keep={report.new_version})
    return ReloadOutcome(report=report, generation=row.generation, fleet=waited)


def follow_app(*, app: str, version: str, pinned: str | None, generation: int, record: bool = True) -> ReloadReport:
    """Load exactly ``version`` of ``app`` here, the target another process set; heartbeat says how it went.

    A failure is recorded in the heartbeat (and, when ``record``, as a reload event) and re-raised.
    """
    util = get_registry().get(app)
    retiring = util.current
    started = time.perf_counter()
    try:
        report = util.follow(version, pinned=pinned)
    except ServingError as exc:
        fleet.beats().set(app, generation=generation, error=exc.message)
        if record:
            record_reload(app=app, from_version=retiring.id if retiring else "", to_version=version,
                          trigger=ReloadEvent.Trigger.SYNC, user=None, error=exc.message, started=started)
        raise
    record_reload(app=app, from_version=report.old_version or "", to_version=report.new_version,
                  trigger=ReloadEvent.Trigger.SYNC, user=None, error="", started=started)
    _served(app, report.new_version, generation)
    release_when_idle(retiring)
    return report


def _prune(app_dir, app: str, *, keep: set[str]) -> None:
    """Remove the snapshots no live process serves, but the newest YYAI_KEEP_SNAPSHOTS (for rollback)."""
    served = {p["version"] for p in fleet.processes(app)}
    removed = snapshots.prune(app_dir, keep=keep | served, keep_last=yyai_settings.KEEP_SNAPSHOTS)
    if removed:
        log.info("app %s: removed snapshots nobody serves: %s", app, ", ".join(removed))


def _served(app: str, version: str, generation: int) -> None:
    """This process serves ``version`` of ``app`` at ``generation``: its heartbeat and watcher say so now."""
    mark_applied(app, generation)
    beats = fleet.beats()
    beats.set(app, version=version, generation=generation, error="")
    beats.write(force=True)


def ensure_app(*, name: str) -> ModelApp:
    """The app's database row, created on first sight."""
    row, _ = ModelApp.objects.get_or_create(name=name)
    return row


def sync_apps(*, names: list[str]) -> None:
    """Create rows for apps that exist on disk but not yet in the database (no write otherwise)."""
    missing = set(names) - set(ModelApp.objects.filter(name__in=names).values_list("name", flat=True))
    if missing:
        ModelApp.objects.bulk_create([ModelApp(name=n) for n in sorted(missing)], ignore_conflicts=True)


def record_reload(*, app: str, from_version: str, to_version: str, trigger: str, user, error: str,
                  started: float) -> ReloadEvent:
    """Write one ReloadEvent (status from ``error``) for this host and process, and count it."""
    metrics.count_reload(app=app, trigger=trigger, ok=not error)
    return ReloadEvent.objects.create(
        app=ensure_app(name=app), from_version=from_version, to_version=to_version, trigger=trigger,
        user=user if getattr(user, "is_authenticated", False) else None,
        status=ReloadEvent.Status.FAILED if error else ReloadEvent.Status.OK, error=error[:10_000],
        duration_ms=round((time.perf_counter() - started) * 1000, 1), host=HOST, pid=os.getpid(),
    )
