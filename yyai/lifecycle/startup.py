"""Process start-up: load every app on its target, join the fleet, follow it from then on.

:func:`start` is called once per serving process: gunicorn after fork
(``post_worker_init``), ``runserver`` from the app config, ``grpcserve``, and
tests explicitly. For each app it loads exactly the version the database says
every process serves (its target), so a worker that gunicorn restarts comes
back on the current one. An app without a target yet is loaded by its pin or
policy (a flat layout frozen into a snapshot) and that becomes its target,
unless another process set one first; then that one is loaded.

Start-up always serves: when an app's target is gone from the repository, the
process serves what the repository holds now and makes that the target
(yyai.services.reloads.serve_what_is_there).
The same files restored hash to the same id: that is the target, served again.

A tool that loads the store without serving (``manage.py predict``,
``yyai_status``) passes ``serving=False``: it follows the targets but keeps no
heartbeat, sets no target and starts no watcher.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db.utils import DatabaseError

from yyai.conf import yyai_settings
from yyai.fleet import heartbeats, process_registry
from yyai.fleet.wakeup import Wakeup, is_postgres
from yyai.lifecycle.watcher import GenerationWatcher
from yyai.models import ModelApp
from yyai.runtime.errors import ServingError, VersionNotFound
from yyai.runtime.registry import LoadResult, Plan, Registry
from yyai.services.records import mark_interrupted, sync_apps
from yyai.services.reloads import claim_target, serve_what_is_there
from yyai.services.uploads import reserved_name

log = logging.getLogger(__name__)


def start(*, watch: bool | None = None, serving_process: bool = True) -> Registry:
    """Load every app of the model store on its target, then keep it there.

    ``watch`` (default: when YYAI_SYNC_SECONDS > 0) starts the watcher thread;
    ``serving_process=False`` is for tools (see the module docstring).
    """
    registry = process_registry.get_registry()
    started = time.perf_counter()
    names = registry.names()
    log.info("loading %d model apps from %s: %s", len(names), registry.store, ", ".join(names) or "none")
    for name in filter(reserved_name, names):
        log.warning(
            "app %s has the name of one of the server's own routes: its seed routes /%s/ and "
            "/%s_loadmodel/ are shadowed (/api/apps/%s/ works); rename its folder",
            name,
            name,
            name,
            name,
        )
    known = _database_state()
    results = registry.load_all(
        {
            name: Plan(version=target or None, pinned=pinned or None)
            for name, (_, target, pinned) in known.items()
            if name in names
        }
    )
    if serving_process:
        _recover_lost_targets(registry, known, results)
        _claim_targets(registry, known)
    for util in registry.all():
        status = util.status()
        log.info(
            "app %s: %s version=%s%s",
            util.name,
            status["state"],
            status["version"],
            f" error={status['last_error']}" if status["last_error"] else "",
        )
    watcher = _join_fleet(registry, known, names, watch) if serving_process else None
    log.info("model store ready in %.1f s", time.perf_counter() - started)  # and, serving, in the fleet
    if watcher is not None:
        watcher.start()
    return registry


def _join_fleet(
    registry: Registry, known: dict[str, tuple[int, str, str]], names: list[str], watch: bool | None
) -> GenerationWatcher | None:
    """Install the watcher, write this process's first heartbeats and close the reloads a stopped process left
    running; the watcher to start (None when not watching)."""
    watch = watch if watch is not None else yyai_settings.SYNC_SECONDS > 0
    wakeup = Wakeup(settings.DATABASES["default"] if is_postgres() else None) if watch else None
    watcher = GenerationWatcher(
        registry, sync_seconds=yyai_settings.SYNC_SECONDS, poll_seconds=yyai_settings.POLL_SECONDS, wakeup=wakeup
    )
    for name, (generation, target, _) in known.items():
        if name in names and target and registry.get(name).version_id == target:  # loaded, or on standby
            watcher.mark_applied(name, generation)
    process_registry.install_watcher(watcher)
    _beat(registry, known)
    try:
        interrupted = mark_interrupted()
    except DatabaseError as exc:
        log.warning("cannot look for interrupted reloads (%s)", exc)
    else:
        if interrupted:
            log.warning(
                "reloads %s were interrupted: their process stopped before they finished",
                ", ".join(map(str, interrupted)),
            )
    return watcher if watch else None


def stop() -> None:
    """This serving process is stopping: stop following the fleet and leave it (gunicorn's worker_exit)."""
    process_registry.reset()
    try:
        heartbeats.leave()
    except DatabaseError as exc:
        log.warning("could not leave the fleet (%s); this process ages out of it instead", exc)


def _database_state() -> dict[str, tuple[int, str, str]]:
    """name -> (generation, target version, pinned version); empty if the database is not reachable yet."""
    try:
        return {
            name: (generation, target, pinned)
            for name, generation, target, pinned in ModelApp.objects.values_list(
                "name", "generation", "target_version", "pinned_version"
            )
        }
    except DatabaseError as exc:
        log.warning("database not ready (%s); starting without targets", exc)
        return {}


def _recover_lost_targets(
    registry: Registry, known: dict[str, tuple[int, str, str]], results: dict[str, LoadResult]
) -> None:
    """Every app that serves nothing here because its target is gone everywhere serves what is there now."""
    for name, result in results.items():
        generation, target, _ = known.get(name, (0, "", ""))
        if not target or not isinstance(result.error, VersionNotFound) or registry.get(name).current is not None:
            continue
        try:
            serve_what_is_there(app=name, lost=target, generation=generation)
        except (DatabaseError, ServingError) as exc:
            log.warning(
                "app %s: its target %s is gone and nothing else could be served (%s); the watcher retries",
                name,
                target,
                getattr(exc, "message", exc),
            )
            continue
        known[name] = (
            ModelApp.objects.filter(name=name).values_list("generation", "target_version", "pinned_version").get()
        )


def _claim_targets(registry: Registry, known: dict[str, tuple[int, str, str]]) -> None:
    """What this process loaded becomes the target of every app that has none; another's claim wins a race."""
    for util in registry.all():
        if util.current is None or known.get(util.name, (0, "", ""))[1]:
            continue
        try:
            known[util.name] = claim_target(util)
        except (DatabaseError, ServingError) as exc:
            log.warning("app %s: cannot settle its target at start-up (%s); the watcher retries", util.name, exc)


def _beat(registry: Registry, known: dict[str, tuple[int, str, str]]) -> None:
    """Join the fleet: one heartbeat per app, with what this process serves (or why it serves nothing)."""
    beats = heartbeats.beats()
    for util in registry.all():
        status = util.status()
        beats.set(
            util.name,
            version=status["version"] or "",
            generation=known.get(util.name, (0,))[0],
            error=status["last_error"] or "",
            resident=util.current is not None,
            memory=status["memory"]["bytes"],
        )
    try:
        sync_apps(names=[u.name for u in registry.all()])
        beats.write(force=True)
    except DatabaseError as exc:
        log.warning("cannot write heartbeats yet (%s); the watcher retries", exc)
