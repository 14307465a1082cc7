"""Read operations: what the API, admin and pages show."""
from __future__ import annotations

from django.db.models import QuerySet

from yyai.models import ModelApp, ReloadEvent
from yyai.serving import get_registry
from yyai.services import sync_apps


def app_queryset() -> QuerySet[ModelApp]:
    """Every app in the model store, as database rows (a new folder gets its row on first sight)."""
    names = get_registry().names()
    sync_apps(names=names)
    return ModelApp.objects.filter(name__in=names)


def app_status(*, app: ModelApp) -> dict:
    """This process's runtime status of ``app`` plus what the database knows."""
    status = get_registry().get(app.name).status()
    status["generation"] = app.generation
    return status


def names_in_state(*, state: str) -> list[str]:
    """Names of the apps whose runtime state in this process is ``state``."""
    return [u.name for u in get_registry().all() if u.state.value == state.upper()]


def reload_event_list() -> QuerySet[ReloadEvent]:
    return ReloadEvent.objects.select_related("app", "user")
