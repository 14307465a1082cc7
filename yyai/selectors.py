"""Read operations: what the API, admin and pages show. Nothing here writes."""

from __future__ import annotations

from django.db.models import QuerySet

from yyai.fleet import heartbeats
from yyai.fleet.process_registry import get_registry
from yyai.models import ModelApp, ReloadEvent


def app_queryset() -> QuerySet[ModelApp]:
    """The apps of the model store that have a database row: every app at start-up, and one copied in since
    once it is reloaded (the reload writes its row; reading never writes)."""
    return ModelApp.objects.filter(name__in=get_registry().names(), removed_at__isnull=True)


HIDDEN = "failed; the reason is shown to staff"


def app_status(*, app: ModelApp, staff: bool = True) -> dict:
    """This process's runtime status of ``app``, its target, and the live processes that serve it.

    ``degraded``: some live process serves another version than the target, or failed to load it.
    ``staff=False``: load errors (library messages) are replaced by :data:`HIDDEN`.
    """
    status = get_registry().get(app.name).status()
    processes = heartbeats.processes(app.name)
    if not staff:
        status["last_error"] = HIDDEN if status["last_error"] else None
        for process in processes:
            process["error"] = HIDDEN if process["error"] else None
    status["generation"] = app.generation
    status["target_version"] = app.target_version or None
    status["processes"] = processes
    routes = get_registry().routes(app.name)
    status["routes"] = {**routes.describe(), "serving": sorted(get_registry().also(app.name))}
    also = routes.versions - {app.target_version}
    status["degraded"] = any(
        p["version"] != app.target_version or p["error"] or not also <= set(p["also"]) for p in processes
    )
    return status


def names_in_state(*, state: str) -> list[str]:
    """Names of the apps whose runtime state in this process is ``state``."""
    return [u.name for u in get_registry().all() if u.state.value == state.upper()]


def reload_event_list() -> QuerySet[ReloadEvent]:
    return ReloadEvent.objects.select_related("app", "user")
