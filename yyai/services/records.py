"""What the database keeps of apps and reloads: each app's row, and one ReloadEvent per reload, written
before it loads and closed when it ends, so a process killed mid-way leaves its reload in the history
(marked interrupted by the next start-up on its host)."""

from __future__ import annotations

import os
import time

from yyai import metrics
from yyai.fleet.heartbeats import HOST
from yyai.models import ModelApp, ReloadEvent
from yyai.runtime.processes import alive


def ensure_app(*, name: str) -> ModelApp:
    """The app's database row, created on first sight."""
    row, _ = ModelApp.objects.get_or_create(name=name)
    return row


def sync_apps(*, names: list[str]) -> None:
    """Create rows for apps that exist on disk but not yet in the database (no write otherwise)."""
    missing = set(names) - set(ModelApp.objects.filter(name__in=names).values_list("name", flat=True))
    if missing:
        ModelApp.objects.bulk_create([ModelApp(name=n) for n in sorted(missing)], ignore_conflicts=True)


def begin_reload(*, app: str, from_version: str, to_version: str, trigger: str, user) -> ReloadEvent:
    """The reload's row, written before it loads (status ``running``, this host and pid): a process killed
    mid-way leaves it in the history (:func:`mark_interrupted`)."""
    return ReloadEvent.objects.create(
        app=ensure_app(name=app),
        from_version=from_version,
        to_version=to_version,
        trigger=trigger,
        user=user if getattr(user, "is_authenticated", False) else None,
        status=ReloadEvent.Status.RUNNING,
        host=HOST,
        pid=os.getpid(),
    )


def finish_reload(event: ReloadEvent, *, to_version: str, error: str, started: float, note: str = "") -> ReloadEvent:
    """Record how ``event`` ended (status from ``error``), and count it."""
    metrics.count_reload(app=event.app.name, trigger=event.trigger, ok=not error)
    event.to_version, event.error, event.note = to_version, error[:10_000], note
    event.status = ReloadEvent.Status.FAILED if error else ReloadEvent.Status.OK
    event.duration_ms = round((time.perf_counter() - started) * 1000, 1)
    event.save(update_fields=["to_version", "error", "note", "status", "duration_ms"])
    return event


def record_reload(
    *, app: str, from_version: str, to_version: str, trigger: str, user, error: str, started: float, note: str = ""
) -> ReloadEvent:
    """One ReloadEvent for a reload this process did in one step (following, start-up, removal)."""
    event = begin_reload(app=app, from_version=from_version, to_version=to_version, trigger=trigger, user=user)
    return finish_reload(event, to_version=to_version, error=error, started=started, note=note)


def mark_interrupted() -> list[int]:
    """The reloads a process of this host left running when it stopped (killed mid-way): ``interrupted``.
    Their ids; a retry with the same body is safe (a reload of what serves already changes nothing)."""
    running = ReloadEvent.objects.filter(status=ReloadEvent.Status.RUNNING, host=HOST).values_list("id", "pid")
    gone = [event for event, pid in running if not alive(pid)]
    ReloadEvent.objects.filter(id__in=gone).update(
        status=ReloadEvent.Status.INTERRUPTED,
        error="the process that ran this reload stopped before it finished; nothing of it serves, and a retry "
        "with the same body is safe",
    )
    return gone
