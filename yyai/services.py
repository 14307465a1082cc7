"""Write operations and the predict use case (HackSoft style: keyword-only, typed).

Views parse, call one function here, and respond. Nothing here knows HTTP.
"""
from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import F

from yyai.models import ModelApp, ReloadEvent
from yyai.runtime.errors import ReloadInProgress, ServingError
from yyai.runtime.model_util import ReloadReport
from yyai.serving import get_registry

HOST = socket.gethostname()


@dataclass(frozen=True)
class PredictionResult:
    """One predict call's answer: per input row, one result per model."""

    app: str
    version: str
    demo: bool
    rows: list[list[dict[str, Any]]]
    elapsed_ms: float


def predict(*, app: str, images: list[bytes] | None = None, instances: Any = None,
            max_pixels: int, max_batch: int) -> PredictionResult:
    """Run every model of ``app`` on image bytes or ready tensors, all on one version."""
    started = time.perf_counter()
    util = get_registry().get(app)
    with util.serving() as version:
        if images is not None:
            batch = version.prepare_images(images, max_pixels=max_pixels)
        else:
            batch = version.prepare_tensors(instances, max_batch=max_batch)
        rows = version.format(version.infer(batch))
        return PredictionResult(app=app, version=version.id, demo=version.spec.demo, rows=rows,
                                elapsed_ms=round((time.perf_counter() - started) * 1000, 2))


def reload_app(*, app: str, version: str | int | None = None, user=None,
               trigger: str = ReloadEvent.Trigger.API, wait: bool = True) -> ReloadReport:
    """Reload ``app`` from disk in this process and raise its generation for every other one.

    ``version``: None keeps the pin, a number pins it, ``"latest"`` unpins. A
    failed reload is recorded and re-raised; the old version keeps serving.
    """
    util = get_registry().get(app)
    old = util.current.id if util.current else ""
    started = time.perf_counter()
    try:
        report = util.reload(version, wait=wait)
    except ReloadInProgress:
        raise
    except ServingError as exc:
        _record(app=app, from_version=old, to_version=str(version or ""), trigger=trigger, user=user,
                status=ReloadEvent.Status.FAILED, error=exc.message, started=started)
        raise
    with transaction.atomic():
        row = ensure_app(name=app)
        ModelApp.objects.filter(pk=row.pk).update(generation=F("generation") + 1, pinned_version=util.pinned or "")
        _record(app=app, from_version=report.old_version or "", to_version=report.new_version, trigger=trigger,
                user=user, status=ReloadEvent.Status.OK, error="", started=started)
    return report


def ensure_app(*, name: str) -> ModelApp:
    """The app's database row, created on first sight."""
    row, _ = ModelApp.objects.get_or_create(name=name)
    return row


def sync_apps(*, names: list[str]) -> None:
    """Create rows for apps that exist on disk but not yet in the database (no write otherwise)."""
    missing = set(names) - set(ModelApp.objects.filter(name__in=names).values_list("name", flat=True))
    if missing:
        ModelApp.objects.bulk_create([ModelApp(name=n) for n in sorted(missing)], ignore_conflicts=True)


def _record(*, app: str, from_version: str, to_version: str, trigger: str, user, status: str, error: str,
            started: float) -> ReloadEvent:
    return ReloadEvent.objects.create(
        app=ensure_app(name=app), from_version=from_version, to_version=to_version, trigger=trigger,
        user=user if getattr(user, "is_authenticated", False) else None, status=status, error=error[:10_000],
        duration_ms=round((time.perf_counter() - started) * 1000, 1), host=HOST, pid=os.getpid(),
    )
