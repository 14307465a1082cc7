"""This process's one model registry, configured from the YYAI settings, and its watcher.

The registry loads nothing by itself: :func:`yyai.lifecycle.startup.start` loads every
app (gunicorn after fork, ``runserver`` from the app config, tests explicitly),
never at import of urls, nor during ``migrate``, ``check`` or test collection.
"""

from __future__ import annotations

import gc
import threading
import time
import weakref
from pathlib import Path

from django.conf import settings

from yyai.conf import yyai_settings
from yyai.runtime.handlers import AppCaller, HandlerSettings
from yyai.runtime.manifest import BatchingSpec
from yyai.runtime.registry import Registry, RegistryConfig
from yyai.runtime.servable import ServingVersion, State

_registry: Registry | None = None
_app_caller: AppCaller | None = None  # how handlers call apps: the data plane, installed by the app config
_watcher = None  # yyai.lifecycle.watcher.GenerationWatcher once start() ran
RELEASE_GRACE_SECONDS = 1.0
_lock = threading.Lock()


def registry_config() -> RegistryConfig:
    return RegistryConfig(
        store=yyai_settings.MODEL_STORE,
        cache_dir=yyai_settings.CACHE_DIR or Path(settings.DATA_DIR) / "model-cache",
        settle_seconds=yyai_settings.SETTLE_SECONDS,
        batching_defaults=BatchingSpec(
            max_batch_size=yyai_settings.MAX_ROWS_PER_BATCH,
            batch_timeout_micros=yyai_settings.BATCH_TIMEOUT_MICROS,
            max_enqueued=yyai_settings.MAX_ENQUEUED,
            max_enqueued_bytes=yyai_settings.MAX_QUEUED_BYTES,
        ),
        max_file_bytes=yyai_settings.MAX_MODEL_FILE_BYTES,
        load_workers=yyai_settings.LOAD_WORKERS,
        handlers=HandlerSettings(
            allowed=yyai_settings.ALLOW_HANDLERS, call_app=_app_caller, max_pixels=yyai_settings.MAX_IMAGE_PIXELS
        ),
    )


def install_app_caller(call_app: AppCaller) -> None:
    """Give every handler's ``context.predict`` its way to the apps (the data plane sits above this module)."""
    global _app_caller
    _app_caller = call_app
    if _registry is not None:
        _registry.config.handlers.call_app = call_app


def get_registry() -> Registry:
    """This process's registry (created on first use; loads nothing by itself)."""
    global _registry
    if _registry is None:
        with _lock:
            if _registry is None:
                _registry = Registry(registry_config())
    return _registry


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


def install_watcher(watcher) -> None:
    """Make ``watcher`` (a yyai.lifecycle.watcher.GenerationWatcher) this process's, stopping the previous one."""
    global _watcher
    with _lock:
        if _watcher is not None:
            _watcher.stop()
        _watcher = watcher


def mark_applied(name: str, generation: int) -> None:
    """Tell this process's watcher that it already serves ``generation`` of ``name``."""
    if _watcher is not None:
        _watcher.mark_applied(name, generation)


def reset() -> None:
    """Stop the watcher and forget the registry (tests switch model stores with this)."""
    global _registry, _watcher
    with _lock:
        if _watcher is not None:
            _watcher.stop()
        _registry = _watcher = None
