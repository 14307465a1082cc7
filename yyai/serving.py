"""The serving process's one model registry, configured from Django settings.

``start()`` loads every app; gunicorn calls it after fork (post_worker_init),
``runserver`` from the app config, tests explicitly. Nothing loads at import of
urls, nor during ``migrate``, ``check`` or test collection.
"""
from __future__ import annotations

import logging
import threading
import time

from django.conf import settings

from yyai.runtime.manifest import BatchingSpec
from yyai.runtime.registry import Registry, RegistryConfig

log = logging.getLogger(__name__)

_registry: Registry | None = None
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


def start() -> Registry:
    """Load every app of the model store, logging progress and the total time."""
    registry = get_registry()
    started = time.perf_counter()
    names = registry.names()
    log.info("loading %d model apps from %s: %s", len(names), registry.store, ", ".join(names) or "none")
    registry.load_all()
    for util in registry.all():
        status = util.status()
        log.info("app %s: %s version=%s%s", util.name, status["state"], status["version"],
                 f" error={status['last_error']}" if status["last_error"] else "")
    log.info("model store ready in %.1f s", time.perf_counter() - started)
    return registry


def reset() -> None:
    """Forget the registry (tests switch model stores with this)."""
    global _registry
    with _lock:
        _registry = None
