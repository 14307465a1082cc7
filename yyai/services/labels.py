"""Version labels and canary traffic: set them, promote the canary, roll it back (every process, read-your-writes).

Like a reload, a change is made here first: every labelled version is loaded
in this process (a version that cannot load changes nothing anywhere), then
the app's row changes in one transaction with a new generation, every process
is woken, and the call answers once every live process serves the target and
every labelled version (:func:`yyai.fleet.heartbeats.wait_for`), or after
``YYAI_RELOAD_WAIT_SECONDS`` with the processes that lag. Each change is a line
of the app's reload history.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.db import transaction

from yyai.conf import yyai_settings
from yyai.fleet import heartbeats, wakeup
from yyai.fleet.process_registry import get_registry
from yyai.models import ModelApp, ReloadEvent
from yyai.runtime.errors import InputError, ServingError, VersionNotFound
from yyai.runtime.routes import CANARY, Routes
from yyai.services.records import record_reload
from yyai.services.reloads import ReloadOutcome, reload_app


@dataclass(frozen=True)
class RoutesOutcome:
    """The app's routes after a change, its generation, and where the processes stand."""

    app: str
    routes: Routes
    target: str
    generation: int
    fleet: heartbeats.FleetReport


def set_routes(
    *,
    app: str,
    labels: dict[str, str] | None = None,
    canary_percent: int | None = None,
    canary_header: str | None = None,
    user=None,
    trigger: str = ReloadEvent.Trigger.API,
) -> RoutesOutcome:
    """Label versions of ``app`` (None keeps the labels; ``{}`` removes them all) and set its canary share;
    InputError for a bad change, VersionNotFound or another ServingError for a version that cannot serve."""
    registry = get_registry()
    util = registry.get(app)
    row = ModelApp.objects.get(name=app)
    if not row.target_version:
        raise InputError(f"app '{app}' has no target version yet; reload it first")
    labels = {**row.labels} if labels is None else {str(k): _version_id(util, str(v)) for k, v in labels.items()}
    routes = Routes(
        labels,
        row.canary_percent if canary_percent is None else canary_percent,
        row.canary_header if canary_header is None else canary_header,
    )
    return _apply(app, routes, user=user, trigger=trigger, note=f"routes: {_words(routes)}")


def promote(*, app: str, user=None, trigger: str = ReloadEvent.Trigger.API) -> tuple[ReloadOutcome, RoutesOutcome]:
    """The canary's version becomes the target (pinned, every process, as a reload does); its ``canary``
    label goes, ``stable`` names it if that label is in use, and the canary share is 0."""
    row = ModelApp.objects.get(name=app)
    version, labels = _canary_of(row, "promote")
    reloaded = reload_app(app=app, version=version, user=user, trigger=trigger)
    if "stable" in labels:
        labels["stable"] = version
    routes = Routes(labels, 0, row.canary_header)
    return reloaded, _apply(app, routes, user=user, trigger=trigger, note=f"promoted the canary {version}")


def roll_back(*, app: str, user=None, trigger: str = ReloadEvent.Trigger.API) -> RoutesOutcome:
    """The canary ends: its label goes and every request goes to the target again."""
    row = ModelApp.objects.get(name=app)
    version, labels = _canary_of(row, "roll back")
    note = f"rolled back the canary {version}"
    return _apply(app, Routes(labels, 0, row.canary_header), user=user, trigger=trigger, note=note)


def _canary_of(row: ModelApp, doing: str) -> tuple[str, dict[str, str]]:
    """The version ``row``'s app labels canary, and its other labels; InputError if it has no canary."""
    if CANARY not in row.labels:
        raise InputError(f"app '{row.name}' has no version labelled '{CANARY}' to {doing}")
    return row.labels[CANARY], {k: v for k, v in row.labels.items() if k != CANARY}


def _apply(app: str, routes: Routes, *, user, trigger: str, note: str) -> RoutesOutcome:
    started = time.perf_counter()
    registry = get_registry()
    target = ModelApp.objects.get(name=app).target_version
    failed = registry.serve_also(app, routes.versions - {target})  # here first: nothing changes if one fails
    if failed:
        registry.serve_also(app, set(registry.routes(app).versions) - {target})  # back to what was served
        version, exc = next(iter(failed.items()))
        exc.message = f"labelled version {version} cannot serve: {exc.message}"
        exc.args = (exc.message,)
        raise exc
    with transaction.atomic():
        row = ModelApp.objects.select_for_update().get(name=app)
        row.generation += 1
        row.labels, row.canary_percent, row.canary_header = (
            dict(routes.labels),
            routes.canary_percent,
            routes.canary_header,
        )
        row.save(update_fields=["generation", "labels", "canary_percent", "canary_header", "updated_at"])
        record_reload(
            app=app,
            from_version=row.target_version,
            to_version=row.target_version,
            trigger=trigger,
            user=user,
            error="",
            started=started,
            note=note,
        )
        wakeup.notify_hosts()
    registry.set_routes(app, routes)
    beats = heartbeats.beats()
    beats.set(app, generation=row.generation, also=set(registry.also(app)))
    beats.write(force=True)
    wakeup.wake(heartbeats.host_pids())
    also = frozenset(routes.versions - {row.target_version})
    fleet = heartbeats.wait_for(
        app, version=row.target_version, generation=row.generation, timeout=yyai_settings.RELOAD_WAIT_SECONDS, also=also
    )
    return RoutesOutcome(app=app, routes=routes, target=row.target_version, generation=row.generation, fleet=fleet)


def _version_id(util, version: str) -> str:
    """A version as its id: a number or a snapshot id the repository holds; VersionNotFound else."""
    try:
        return util.source.fetch(version).id
    except VersionNotFound:
        raise
    except (OSError, ServingError) as exc:
        raise VersionNotFound(f"version {version} of app '{util.name}' cannot be fetched: {exc}") from None


def _words(routes: Routes) -> str:
    labels = ", ".join(f"{k}={v}" for k, v in sorted(routes.labels.items())) or "no labels"
    canary = f", canary {routes.canary_percent}%" if routes.canary_percent else ""
    return labels + canary + (f" sticky by {routes.canary_header}" if routes.canary_header else "")
