"""The serving process's one model registry, configured from Django settings.

``start()`` loads every app; gunicorn calls it after fork (post_worker_init),
``runserver`` from the app config, tests explicitly. Nothing loads at import of
urls, nor during ``migrate``, ``check`` or test collection.
"""
from __future__ import annotations

import gc
import logging
import threading
import time
import weakref

from django.conf import settings

from yyai.runtime.manifest import BatchingSpec
from yyai.runtime.registry import Registry, RegistryConfig
from yyai.runtime.servable import ServingVersion, State

log = logging.getLogger(__name__)

_registry: Registry | None = None
_watcher = None  # yyai.sync.GenerationWatcher once start() ran
RELEASE_GRACE_SECONDS = 1.0
_lock = threading.Lock()


def registry_config() -> RegistryConfig:
    return RegistryConfig(
        store=settings.YYAI_MODEL_STORE,
        settle_seconds=settings.YYAI_SETTLE_SECONDS,
        batching_defaults=BatchingSpec(
            max_batch_size=settings.YYAI_MAX_BATCH_SIZE,
            batch_timeout_micros=settings.YYAI_BATCH_TIMEOUT_MICROS,
            max_enqueued=settings.YYAI_MAX_ENQUEUED,
        ),
        max_file_bytes=settings.YYAI_MAX_MODEL_FILE_BYTES,
        load_workers=settings.YYAI_LOAD_WORKERS,
    )


def get_registry() -> Registry:
    """This process's registry (created on first use; loads nothing by itself)."""
    global _registry
    if _registry is None:
        with _lock:
            if _registry is None:
                _registry = Registry(registry_config())
    return _registry


def start(*, watch: bool | None = None) -> Registry:
    """Load every app of the model store, then keep it in step with the database.

    Pins and generations are read from the database first, so a worker that
    starts after a pin serves the pinned version. ``watch`` (default: when
    YYAI_SYNC_SECONDS > 0) starts the generation watcher thread.
    """
    global _watcher
    from yyai.sync import GenerationWatcher  # sync -> services -> serving: import here, not at the top

    registry = get_registry()
    started = time.perf_counter()
    names = registry.names()
    log.info("loading %d model apps from %s: %s", len(names), registry.store, ", ".join(names) or "none")
    known = _database_state()
    for name, (_, pinned) in known.items():
        if name in names and pinned:
            registry.get(name).pinned = pinned
    registry.load_all()
    for util in registry.all():
        status = util.status()
        log.info("app %s: %s version=%s%s", util.name, status["state"], status["version"],
                 f" error={status['last_error']}" if status["last_error"] else "")
    log.info("model store ready in %.1f s", time.perf_counter() - started)
    watcher = GenerationWatcher(registry, sync_seconds=settings.YYAI_SYNC_SECONDS,
                                poll_seconds=settings.YYAI_POLL_SECONDS)
    for name, (generation, _) in known.items():
        watcher.mark_applied(name, generation)
    with _lock:
        if _watcher is not None:
            _watcher.stop()
        _watcher = watcher
    if watch if watch is not None else settings.YYAI_SYNC_SECONDS > 0:
        watcher.start()
    return registry


def release_when_idle(old: ServingVersion | None, *, timeout: float = 300.0) -> threading.Thread | None:
    """After a swap, let the garbage collector free ``old`` once its last request is done.

    gunicorn freezes the objects alive after start-up (``gc.freeze()``, see
    gunicorn.conf.py) so that full collections stop scanning them; frozen
    objects are never collected, and a Keras model is full of reference cycles.
    So when a retired version reaches END: unfreeze, collect, freeze again
    (one collection pause per reload). Nothing to do when nothing is frozen.
    """
    if old is None or gc.get_freeze_count() == 0:
        return None
    retired = weakref.ref(old)  # a strong reference here would keep it alive through the collection

    def ended() -> bool:
        version = retired()
        return version is None or version.state is State.END

    def wait_then_collect() -> None:
        deadline = time.monotonic() + timeout
        while not ended() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(RELEASE_GRACE_SECONDS)  # the reloading call and the batcher thread let go of it
        with _lock:
            gc.unfreeze()
            gc.collect()
            gc.freeze()

    thread = threading.Thread(target=wait_then_collect, name="release-old-version", daemon=True)
    thread.start()
    return thread


def mark_applied(name: str, generation: int) -> None:
    """Tell this process's watcher that it already serves ``generation`` of ``name``."""
    if _watcher is not None:
        _watcher.mark_applied(name, generation)


def _database_state() -> dict[str, tuple[int, str]]:
    """name -> (generation, pinned version) from the database; empty if it is not reachable yet."""
    from django.db.utils import DatabaseError

    from yyai.models import ModelApp

    try:
        return {name: (generation, pinned) for name, generation, pinned in
                ModelApp.objects.values_list("name", "generation", "pinned_version")}
    except DatabaseError as exc:
        log.warning("database not ready (%s); starting without pins and generations", exc)
        return {}


def reset() -> None:
    """Stop the watcher and forget the registry (tests switch model stores with this)."""
    global _registry, _watcher
    with _lock:
        if _watcher is not None:
            _watcher.stop()
        _registry = _watcher = None
