"""Heartbeats: what every serving process serves, and waiting until all of them serve one version.

Each serving process keeps one :class:`~yyai.models.ServingProcess` row, touched
every ``YYAI_HEARTBEAT_SECONDS``, and one :class:`~yyai.models.Heartbeat` row per
app (version, generation applied, last error, whether its models are loaded here
and their memory), written on change, never per request; the process row carries
the memory the process really holds (RSS and PSS). A process whose row is older than ``YYAI_PROCESS_TIMEOUT_SECONDS`` is
not live: it is left out of the fleet and of what a reload waits for. A live
process without a heartbeat for an app has never loaded it: it lags.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from yyai.conf import yyai_settings
from yyai.models import Heartbeat, ModelApp, ServingProcess
from yyai.runtime.process_memory import process_memory

HOST = socket.gethostname()
FORGET_AFTER = timedelta(hours=1)  # rows of processes gone this long are deleted


@dataclass
class AppState:
    """What this process serves of one app, as its heartbeat says."""

    version: str = ""
    generation: int = 0
    error: str = ""
    resident: bool = True  # False: on standby under the memory budget (it loads ``version`` on its next request)
    memory: int = 0  # bytes its loaded version measured
    also: str = ""  # the labelled versions served besides ``version``, sorted, comma-separated


class Beats:
    """This process's heartbeats: the state of every app here, written on change and when due."""

    def __init__(self):
        self.process = uuid.uuid4().hex
        self.pid = os.getpid()
        self._states: dict[str, AppState] = {}
        self._dirty: set[str] = set()
        self._dropped: set[str] = set()
        self._next_touch = 0.0
        self._lock = threading.Lock()

    def set(
        self,
        app: str,
        *,
        version: str | None = None,
        generation: int | None = None,
        error: str | None = None,
        resident: bool | None = None,
        memory: int | None = None,
        also: set[str] | None = None,
    ) -> None:
        """Record a change of ``app`` here (written at the next :meth:`write`)."""
        with self._lock:
            state = self._states.setdefault(app, AppState())
            before = dataclasses.astuple(state)
            state.version = state.version if version is None else version
            state.generation = state.generation if generation is None else max(generation, state.generation)
            state.error = state.error if error is None else error[:2000]
            state.resident = state.resident if resident is None else resident
            state.memory = state.memory if memory is None else memory
            state.also = state.also if also is None else ",".join(sorted(also))
            if dataclasses.astuple(state) != before:
                self._dirty.add(app)

    def drop(self, app: str) -> None:
        """This process serves ``app`` no more (it is gone): its heartbeat row goes at the next :meth:`write`."""
        with self._lock:
            self._states.pop(app, None)
            self._dirty.discard(app)
            self._dropped.add(app)

    def get(self, app: str) -> AppState:
        with self._lock:
            return dataclasses.replace(self._states.get(app, AppState()))

    def write(self, *, force: bool = False) -> None:
        """Write the changed rows now, and touch every row of this process when due (or ``force``)."""
        now = timezone.now()
        with self._lock:
            changed = {app: dataclasses.replace(s) for app, s in self._states.items() if app in self._dirty}
            dropped, self._dropped = self._dropped, set()
            self._dirty.clear()
            due = force or time.monotonic() >= self._next_touch
            if due:
                self._next_touch = time.monotonic() + yyai_settings.HEARTBEAT_SECONDS
        try:
            ids = dict(ModelApp.objects.filter(name__in=changed).values_list("name", "id")) if changed else {}
            with transaction.atomic():
                for app, state in changed.items():
                    if app in ids:
                        Heartbeat.objects.update_or_create(
                            process=self.process,
                            app_id=ids[app],
                            defaults={
                                "host": HOST,
                                "pid": self.pid,
                                "version": state.version,
                                "generation": state.generation,
                                "error": state.error,
                                "resident": state.resident,
                                "memory_bytes": state.memory,
                                "also": state.also,
                                "seen_at": now,
                            },
                        )
                if dropped:
                    Heartbeat.objects.filter(process=self.process, app__name__in=dropped).delete()
                if due:
                    memory = process_memory()
                    ServingProcess.objects.update_or_create(
                        process=self.process,
                        defaults={
                            "host": HOST,
                            "pid": self.pid,
                            "seen_at": now,
                            "rss_bytes": memory["rss"],
                            "pss_bytes": memory["pss"],
                        },
                    )
                    Heartbeat.objects.filter(process=self.process).update(seen_at=now)
                    Heartbeat.objects.filter(seen_at__lt=now - FORGET_AFTER).delete()
                    ServingProcess.objects.filter(seen_at__lt=now - FORGET_AFTER).delete()
        except BaseException:
            with self._lock:
                self._dirty.update(changed)  # written next time
                self._dropped.update(dropped - set(self._states))
            raise


def leave() -> None:
    """This process stops serving: its rows go now (a process that dies without leaving ages out instead)."""
    process = beats().process
    Heartbeat.objects.filter(process=process).delete()
    ServingProcess.objects.filter(process=process).delete()


def live_since():
    return timezone.now() - timedelta(seconds=yyai_settings.PROCESS_TIMEOUT_SECONDS)


def processes(app: str) -> list[dict]:
    """Every live serving process and what it serves of ``app``: host, pid, version, generation, seen_at,
    error, also (the labelled versions it serves besides), resident (False: on standby, it loads ``version``
    on its next request), memory_bytes (the app's)
    and the process's rss_bytes and pss_bytes. One that has never loaded the app (or has forgotten it)
    serves version "" at generation 0."""
    live = list(ServingProcess.objects.filter(seen_at__gte=live_since()).order_by("host", "pid"))
    beats = {b.process: b for b in Heartbeat.objects.filter(app__name=app, process__in=[p.process for p in live])}
    rows = []
    for process in live:
        beat = beats.get(process.process)
        rows.append(
            {
                "host": process.host,
                "pid": process.pid,
                "version": beat.version if beat else "",
                "generation": beat.generation if beat else 0,
                "seen_at": process.seen_at,
                "error": (beat.error or None) if beat else None,
                "resident": beat.resident if beat else False,
                "memory_bytes": beat.memory_bytes if beat else 0,
                "also": beat.also.split(",") if beat and beat.also else [],
                "rss_bytes": process.rss_bytes,
                "pss_bytes": process.pss_bytes,
            }
        )
    return rows


def host_pids() -> list[int]:
    """The pids of this host's live serving processes (to wake them)."""
    return list(
        ServingProcess.objects.filter(host=HOST, seen_at__gte=live_since()).values_list("pid", flat=True).distinct()
    )


@dataclass(frozen=True)
class FleetReport:
    """Where the live processes stand on one app's target (``version`` "": the app removed everywhere)."""

    version: str
    generation: int
    converged: bool  # every live process serves ``version`` (and the labelled versions ``also``)
    processes: list[dict] = field(default_factory=list)
    superseded_by: int | None = None  # a newer reload changed the target meanwhile
    also: frozenset[str] = frozenset()

    @property
    def lagging(self) -> list[dict]:
        """The live processes that do not serve ``version`` (yet, or because they failed: see ``error``)."""
        return [p for p in self.processes if not _serves(p, self.version, self.also)]


def _serves(process: dict, version: str, also: frozenset[str]) -> bool:
    return process["version"] == version and also <= set(process["also"])


def wait_for(
    app: str, *, version: str, generation: int, timeout: float, poll: float = 0.05, also: frozenset[str] = frozenset()
) -> FleetReport:
    """Wait until every live process serves ``version`` of ``app`` (and the labelled versions ``also``), or
    failed to, or ``timeout`` passed, or a newer reload superseded this one."""
    deadline = time.monotonic() + timeout

    def settled(process: dict) -> bool:
        return _serves(process, version, also) or (process["generation"] >= generation and bool(process["error"]))

    while True:
        current = ModelApp.objects.filter(name=app).values_list("generation", flat=True).first() or 0
        fleet = processes(app)
        converged = bool(fleet) and all(_serves(p, version, also) for p in fleet)
        superseded = current if current > generation else None
        if all(map(settled, fleet)) or superseded or time.monotonic() >= deadline:
            return FleetReport(
                version=version,
                generation=generation,
                converged=converged,
                processes=fleet,
                superseded_by=superseded,
                also=also,
            )
        time.sleep(poll)


_beats: Beats | None = None
_beats_lock = threading.Lock()


def beats() -> Beats:
    """This process's heartbeats (a new process id after a fork)."""
    global _beats
    with _beats_lock:
        if _beats is None or _beats.pid != os.getpid():
            _beats = Beats()
        return _beats
