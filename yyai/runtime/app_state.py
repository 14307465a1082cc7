"""What one app's ModelUtil reports: how a load went, why the last one failed, and its JSON-ready state."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .errors import ServingError
from .manifest import MemorySpec
from .servable import ServingVersion, State


@dataclass(frozen=True)
class ReloadReport:
    """What a load or reload did."""

    app: str
    old_version: str | None
    new_version: str
    load_seconds: float
    models: list[dict]
    handler: dict | None = None

    @classmethod
    def of(cls, app: str, old: ServingVersion | None, new: ServingVersion) -> ReloadReport:
        """What swapping ``old`` (None: nothing served) for ``new`` did."""
        return cls(
            app=app,
            old_version=old.id if old else None,
            new_version=new.id,
            load_seconds=new.load_seconds,
            models=[m.describe() for m in new.models],
            handler=new.handler.describe() if new.handler else None,
        )


@dataclass
class Failure:
    """A load that failed: the version it tried and why."""

    version: str | None
    error: str
    at: float = field(default_factory=time.time)


class App(Protocol):
    """What a state is read from: one app's ModelUtil."""

    name: str
    source: Any  # an AppSource
    settle_seconds: float
    pinned: str | None
    memory: MemorySpec
    budget: Any  # its MemoryBudget
    current: ServingVersion | None
    failure: Failure | None
    loading: str | None
    version_id: str | None
    state: State


def status_of(util: App) -> dict:
    """JSON-ready state of the app in this process: serving (or standby) version, versions on disk, last error,
    memory."""
    current = util.current
    failure = util.failure
    try:
        candidates = util.source.versions(settle_seconds=util.settle_seconds)
    except (OSError, ServingError):  # VersionNotFound, RepositoryUnavailable: no versions to list now
        candidates = []
    versions = []
    for c in candidates:
        if current is not None and c.id == current.id:
            state = State.AVAILABLE
        elif c.id == util.loading:
            state = State.LOADING
        elif c.id == util.version_id:
            state = State.STANDBY
        elif failure is not None and c.id == failure.version:
            state = State.FAILED
        else:
            state = State.START
        versions.append(
            {
                "version": c.id,
                "state": state.value,
                "complete": c.complete,
                "reason": c.reason,
                "files": [Path(f).name for f in c.files],
            }
        )
    spec = current.spec if current else None
    return {
        "name": util.name,
        "state": util.state.value,
        "version": util.version_id,
        "pinned": util.pinned,
        "description": spec.description if spec else "",
        "demo": spec.demo if spec else False,
        "models": [m.describe() for m in current.models] if current else [],
        "handler": current.handler.describe() if current and current.handler else None,
        "versions": versions,
        "last_error": failure.error if failure else None,
        "last_error_at": failure.at if failure else None,
        "memory": {
            "bytes": util.budget.held(util.name),
            "resident": current is not None,
            "pinned": util.memory.pinned,
            "priority": util.memory.priority,
        },
    }
