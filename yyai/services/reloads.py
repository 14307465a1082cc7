"""Reloads: the process that leads one, and the processes that follow it (HackSoft style: keyword-only, typed).

A reload loads the app here, then makes what it loaded the app's target in
the database (a version number, or a flat layout's snapshot id) and raises its
generation; every other process loads exactly that target
(:func:`follow_app`, called by yyai.lifecycle.watcher). The reload answers once every live
process serves the target (:mod:`yyai.fleet.heartbeats`), or after
``YYAI_RELOAD_WAIT_SECONDS`` with the processes that lag or failed.

A reload of an app that is gone from the repository removes it: from every
process (:func:`remove_app`), every list, the admin and the web page. A
process that serves nothing of an app whose target is gone everywhere serves
what the repository holds now and makes that the target
(:func:`serve_what_is_there`): start-up always serves.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from yyai.conf import yyai_settings
from yyai.fleet import heartbeats, wakeup
from yyai.fleet.process_registry import get_registry, mark_applied
from yyai.models import ModelApp, ReloadEvent
from yyai.runtime.app_state import ReloadReport
from yyai.runtime.errors import ReloadInProgress, ServingError
from yyai.runtime.model_util import LATEST
from yyai.runtime.process_memory import release_when_idle
from yyai.services.records import begin_reload, finish_reload, record_reload

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReloadOutcome:
    """What a reload did here, the generation it announced, and where the other processes stand."""

    report: ReloadReport
    generation: int
    fleet: heartbeats.FleetReport | None  # None: not waited for
    removed: bool = False  # the app was gone from the repository: every process unloaded it


def reload_app(
    *,
    app: str,
    version: str | int | None = None,
    user=None,
    trigger: str = ReloadEvent.Trigger.API,
    wait: bool = True,
    wait_fleet: bool = True,
) -> ReloadOutcome:
    """Reload ``app`` here and make what it loaded every process's target; wait for them unless told not to.

    ``version``: None keeps the pin, a number or a snapshot id pins it,
    ``"latest"`` unpins. A failed reload is recorded and re-raised; the old
    version keeps serving everywhere and no target changes. An app gone from
    the repository is removed (:func:`remove_app`).
    """
    util = get_registry().get(app)
    if not util.source.exists():
        return remove_app(app=app, user=user, trigger=trigger, wait_fleet=wait_fleet)
    retiring = util.current
    started = time.perf_counter()
    event = begin_reload(
        app=app, from_version=retiring.id if retiring else "", to_version=str(version or ""), trigger=trigger, user=user
    )
    try:
        report = util.reload(version, wait=wait)
    except ReloadInProgress:
        event.delete()  # nothing was attempted: the other reload's row tells
        raise
    except ServingError as exc:
        finish_reload(event, to_version=event.to_version, error=exc.message, started=started)
        raise
    with transaction.atomic():
        row, _ = ModelApp.objects.select_for_update().get_or_create(name=app)
        changed = (row.target_version, row.pinned_version, row.removed_at) != (
            report.new_version,
            util.pinned or "",
            None,
        )
        if changed:
            _set_target(row, report.new_version, util.pinned or "")
        finish_reload(event, to_version=report.new_version, error="", started=started)
    _served(app, report.new_version, row.generation)
    if changed:
        wakeup.wake(heartbeats.host_pids())
    release_when_idle(retiring)
    waited = (
        heartbeats.wait_for(
            app, version=report.new_version, generation=row.generation, timeout=yyai_settings.RELOAD_WAIT_SECONDS
        )
        if wait_fleet
        else None
    )
    _prune(util, keep={report.new_version})
    return ReloadOutcome(report=report, generation=row.generation, fleet=waited)


def _set_target(row: ModelApp, version: str, pinned: str, *, removed_at=None) -> None:
    """Make ``version`` every process's target of ``row``'s app as a new generation (a removed app revived;
    with ``removed_at``, version "": removed); the caller holds the row's lock, and every process is told once
    the transaction commits."""
    row.generation += 1
    row.target_version, row.pinned_version, row.removed_at = version, pinned, removed_at
    row.save(update_fields=["generation", "target_version", "pinned_version", "removed_at", "updated_at"])
    wakeup.notify_hosts()


def remove_app(
    *, app: str, user=None, trigger: str = ReloadEvent.Trigger.API, wait_fleet: bool = True
) -> ReloadOutcome:
    """``app`` is gone from the repository: unload it here, tell every process to, wait until none serves it.

    Its row stays (marked removed) for the reload history; it leaves every list.
    """
    started = time.perf_counter()
    retiring = get_registry().forget(app)
    with transaction.atomic():
        row, _ = ModelApp.objects.select_for_update().get_or_create(name=app)
        old = row.target_version or (retiring.id if retiring else "")
        _set_target(row, "", "", removed_at=timezone.now())
        record_reload(
            app=app,
            from_version=old,
            to_version="",
            trigger=trigger,
            user=user,
            error="",
            started=started,
            note=f"removed: app '{app}' is gone from the repository",
        )
    dropped(app, row.generation)
    wakeup.wake(heartbeats.host_pids())
    release_when_idle(retiring)
    log.info("app %s: gone from the repository; removed from every process (generation %d)", app, row.generation)
    waited = (
        heartbeats.wait_for(app, version="", generation=row.generation, timeout=yyai_settings.RELOAD_WAIT_SECONDS)
        if wait_fleet
        else None
    )
    report = ReloadReport(app=app, old_version=old or None, new_version="", load_seconds=0.0, models=[])
    return ReloadOutcome(report=report, generation=row.generation, fleet=waited, removed=True)


def dropped(app: str, generation: int) -> None:
    """This process serves ``app`` no more, as of ``generation``: its heartbeat goes, its watcher knows."""
    mark_applied(app, generation)
    beats = heartbeats.beats()
    beats.drop(app)
    beats.write(force=True)


def serve_what_is_there(*, app: str, lost: str, generation: int) -> ReloadReport:
    """Serve what the repository holds of ``app`` now, its target ``lost`` being gone everywhere.

    For a process that serves nothing of ``app``: what it loads becomes every
    process's target as a new generation (trigger ``startup``, the reason in the
    reload history and a warning in the log), unless another process moved the
    target meanwhile; then that target is followed instead. ServingError when
    nothing loadable is there either.
    """
    util = get_registry().get(app)
    started = time.perf_counter()
    report = util.reload(LATEST)
    reason = (
        f"the target version {lost} is gone from the repository; serving {report.new_version}, what the "
        f"repository holds now"
    )
    with transaction.atomic():
        row, _ = ModelApp.objects.select_for_update().get_or_create(name=app)
        moved = row.generation == generation and row.target_version == lost
        if moved:
            _set_target(row, report.new_version, "")
            record_reload(
                app=app,
                from_version=lost,
                to_version=report.new_version,
                trigger=ReloadEvent.Trigger.STARTUP,
                user=None,
                error="",
                started=started,
                note=reason,
            )
    if moved:
        log.warning("app %s: %s (generation %d)", app, reason, row.generation)
        wakeup.wake(heartbeats.host_pids())
    elif row.target_version != report.new_version:
        return follow_app(
            app=app, version=row.target_version, pinned=row.pinned_version or None, generation=row.generation
        )
    _served(app, report.new_version, row.generation)
    return report


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
        heartbeats.beats().set(app, generation=generation, error=exc.message)
        if record:
            record_reload(
                app=app,
                from_version=retiring.id if retiring else "",
                to_version=version,
                trigger=ReloadEvent.Trigger.SYNC,
                user=None,
                error=exc.message,
                started=started,
            )
        raise
    record_reload(
        app=app,
        from_version=report.old_version or "",
        to_version=report.new_version,
        trigger=ReloadEvent.Trigger.SYNC,
        user=None,
        error="",
        started=started,
    )
    _served(app, report.new_version, generation)
    release_when_idle(retiring)
    _evict(util, keep={report.new_version})
    return report


def _prune(util, *, keep: set[str]) -> None:
    """Remove the snapshots no live process serves, but the newest YYAI_KEEP_SNAPSHOTS (for rollback), and
    this host's cached versions that none of its processes serves."""
    processes = heartbeats.processes(util.name)
    served = {p["version"] for p in processes}
    try:
        removed = util.source.prune(keep=keep | served, keep_last=yyai_settings.KEEP_SNAPSHOTS)
    except ServingError as exc:  # the repository is away: prune next time
        log.warning("app %s: snapshots not pruned: %s", util.name, exc.message)
        removed = []
    if removed:
        log.info("app %s: removed snapshots nobody serves: %s", util.name, ", ".join(removed))
    _evict(util, keep=keep, processes=processes)


def _evict(util, *, keep: set[str], processes: list[dict] | None = None) -> None:
    """Remove this host's cached versions of ``util``'s app that no live process of this host serves
    (``processes``: the fleet as the caller just read it)."""
    processes = heartbeats.processes(util.name) if processes is None else processes
    here = {p["version"] for p in processes if p["host"] == heartbeats.HOST}
    evicted = util.source.evict(keep=keep | here)
    if evicted:
        log.info("app %s: removed from this host's cache: %s", util.name, ", ".join(evicted))


def _served(app: str, version: str, generation: int) -> None:
    """This process serves ``version`` of ``app`` at ``generation``: its heartbeat and watcher say so now."""
    mark_applied(app, generation)
    beats = heartbeats.beats()
    beats.set(app, version=version, generation=generation, error="")
    beats.write(force=True)


def claim_target(util) -> tuple[int, str, str]:
    """What ``util`` serves here becomes its app's target if the app has none (a new app, one back in the
    repository, one whose first load failed everywhere); another process's claim wins a race, and this one
    follows it. The app's (generation, target, pinned) after."""
    current = util.current
    with transaction.atomic():
        row, _ = ModelApp.objects.select_for_update().get_or_create(name=util.name)
        if not row.target_version:
            row.generation += 1 if row.removed_at else 0
            row.target_version, row.pinned_version, row.removed_at = current.id, util.pinned or "", None
            row.save(update_fields=["generation", "target_version", "pinned_version", "removed_at", "updated_at"])
    if row.target_version != current.id:
        follow_app(
            app=util.name, version=row.target_version, pinned=row.pinned_version or None, generation=row.generation
        )
    return row.generation, row.target_version, row.pinned_version
