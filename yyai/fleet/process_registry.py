"""This process's one model registry, configured from the YYAI settings, and its watcher.

The registry loads nothing by itself: :func:`yyai.lifecycle.startup.start` loads every
app (gunicorn after fork, ``runserver`` from the app config, tests explicitly),
never at import of urls, nor during ``migrate``, ``check`` or test collection.
"""

from __future__ import annotations

import threading
from pathlib import Path

from django.conf import settings

from yyai.conf import yyai_settings
from yyai.runtime.handlers import AppCaller, HandlerSettings
from yyai.runtime.manifest import BatchingSpec
from yyai.runtime.registry import Registry, RegistryConfig

_registry: Registry | None = None
_app_caller: AppCaller | None = None  # how handlers call apps: the data plane, installed by the app config
_watcher = None  # yyai.lifecycle.watcher.GenerationWatcher once start() ran
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
        memory_budget=yyai_settings.MEMORY_BUDGET,
        load_wait_seconds=yyai_settings.LOAD_WAIT_SECONDS,
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
