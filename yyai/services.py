"""Write operations and the predict use case (HackSoft style: keyword-only, typed).

Views parse, call one function here, and respond. Nothing here knows HTTP.
"""
from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import Any, BinaryIO

from django.conf import settings
from django.db import transaction
from django.db.models import F

from yyai import metrics
from yyai.models import ModelApp, ReloadEvent
from yyai.runtime.errors import InvalidUpload, ReloadInProgress, ServingError
from yyai.runtime.model_util import LATEST, ReloadReport
from yyai.runtime.publish import discard, publish_version, stage_version
from yyai.runtime.servable import ServingVersion
from yyai.runtime.validate import validate_version
from yyai.serving import get_registry, mark_applied, release_when_idle

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
    with get_registry().get(app).serving() as version:
        batch = _prepare(version, images, instances, max_pixels=max_pixels, max_batch=max_batch)
        return _answer(app, version, batch, version.infer(batch), started)


async def predict_async(*, app: str, images: list[bytes] | None = None, instances: Any = None,
                        max_pixels: int, max_batch: int) -> PredictionResult:
    """:func:`predict` for a coroutine: awaits the batch instead of blocking a thread (yyai.fastpath)."""
    started = time.perf_counter()
    with get_registry().get(app).serving() as version:
        batch = _prepare(version, images, instances, max_pixels=max_pixels, max_batch=max_batch)
        return _answer(app, version, batch, await version.infer_async(batch), started)


def _prepare(version: ServingVersion, images: list[bytes] | None, instances: Any, *, max_pixels: int,
             max_batch: int):
    if images is not None:
        return version.prepare_images(images, max_pixels=max_pixels)
    return version.prepare_tensors(instances, max_batch=max_batch)


def _answer(app: str, version: ServingVersion, batch, outputs, started: float) -> PredictionResult:
    rows = version.format(outputs)
    metrics.observe_predict(version, rows=len(batch))
    return PredictionResult(app=app, version=version.id, demo=version.spec.demo, rows=rows,
                            elapsed_ms=round((time.perf_counter() - started) * 1000, 2))


def reload_app(*, app: str, version: str | int | None = None, user=None,
               trigger: str = ReloadEvent.Trigger.API, wait: bool = True, announce: bool = True) -> ReloadReport:
    """Reload ``app`` from disk in this process and, if ``announce``, raise its generation for every other one.

    ``version``: None keeps the pin, a number pins it, ``"latest"`` unpins. A
    failed reload is recorded and re-raised; the old version keeps serving.
    ``announce=False`` is for reloads that follow one (generation sync, file poll).
    """
    util = get_registry().get(app)
    retiring = util.current
    old = retiring.id if retiring else ""
    started = time.perf_counter()
    try:
        report = util.reload(version, wait=wait)
    except ReloadInProgress:
        raise
    except ServingError as exc:
        record_reload(app=app, from_version=old, to_version=str(version or ""), trigger=trigger, user=user,
                      error=exc.message, started=started)
        raise
    with transaction.atomic():
        if announce:
            row = ensure_app(name=app)
            ModelApp.objects.filter(pk=row.pk).update(generation=F("generation") + 1,
                                                      pinned_version=util.pinned or "")
            generation = ModelApp.objects.values_list("generation", flat=True).get(pk=row.pk)
        record_reload(app=app, from_version=report.old_version or "", to_version=report.new_version,
                      trigger=trigger, user=user, error="", started=started)
    if announce:
        mark_applied(app, generation)
    release_when_idle(retiring)
    return report


@dataclass(frozen=True)
class UploadResult:
    """A version written by :func:`upload_version`."""

    app: str
    version: int
    models: list[dict]
    reload: ReloadReport | None


def upload_version(*, app: str, files: list[tuple[str, BinaryIO]], manifest: bytes | None = None,
                   activate: bool = True, user=None) -> UploadResult:
    """Write a new numbered version of ``app`` (created if new), validated before it can serve.

    The files are staged in a hidden folder, loaded and warmed up in a child
    process under a memory and time limit, then published as the next version
    number in one rename. Invalid: InputError/ModelLoadError, nothing left on
    disk. ``activate`` serves it at once everywhere (and removes a pin);
    otherwise it waits for the next reload.
    """
    app_dir = get_registry().app_dir(app)
    staging = stage_version(app_dir, files, manifest)
    try:
        try:
            models = validate_version(staging, app_dir=app_dir, timeout=settings.YYAI_VALIDATE_TIMEOUT_SECONDS,
                                      memory_bytes=settings.YYAI_VALIDATE_MEMORY_BYTES,
                                      max_file_bytes=settings.YYAI_MAX_MODEL_FILE_BYTES,
                                      isolated=settings.YYAI_VALIDATE_ISOLATED)
        except ServingError as exc:
            raise InvalidUpload(f"the upload was refused and nothing was kept: {exc.message}") from exc
        number = publish_version(app_dir, staging)
    finally:
        discard(staging)  # gone already once published
    report = reload_app(app=app, version=LATEST, user=user, trigger=ReloadEvent.Trigger.UPLOAD) if activate else None
    return UploadResult(app=app, version=number, models=models, reload=report)


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
