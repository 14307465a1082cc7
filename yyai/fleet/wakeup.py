"""Wake the other serving processes at once when a reload changed an app's target.

* Between the processes of one host: each serving process binds an abstract
  UNIX datagram socket named after its pid; a reload sends one byte to every
  process of its host that keeps a heartbeat (an SQLite database is one host's).
* Across hosts, when the database is PostgreSQL: ``NOTIFY`` on :data:`CHANNEL`,
  which every serving process ``LISTEN``s on, sent in the transaction that
  raises the generation (so it is delivered only when that commits).

The poll every ``YYAI_SYNC_SECONDS`` stays as the fallback: a lost wake-up
only delays a process until its next poll.
"""

from __future__ import annotations

import logging
import os
import select
import socket
from typing import Iterable

from django.db import connection

log = logging.getLogger(__name__)

CHANNEL = "yyai_reload"


def _address(pid: int) -> str:
    return f"\0yyai-wake-{pid}"  # abstract namespace: no file to leave behind


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


class Wakeup:
    """This process's end: :meth:`wait` returns early when another process wakes it."""

    def __init__(self, database: dict | None = None):
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(_address(os.getpid()))
        self._socket.setblocking(False)
        self._database = database  # settings.DATABASES entry when it is PostgreSQL
        self._listener = None

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds; True when woken before that."""
        listener = self._listen()
        sources = [self._socket] + ([listener] if listener is not None else [])
        try:
            readable, _, _ = select.select(sources, [], [], max(0.0, timeout))
        except (OSError, ValueError):  # a listener connection that broke
            self._drop_listener()
            return False
        for source in readable:
            if source is self._socket:
                self._drain()
            else:
                self._drain_notifies()
        return bool(readable)

    def close(self) -> None:
        self._socket.close()
        self._drop_listener()

    def _drain(self) -> None:
        while True:
            try:
                self._socket.recv(64)
            except BlockingIOError:
                return

    def _listen(self):
        if self._database is None or self._listener is not None:
            return self._listener
        import psycopg

        try:
            self._listener = psycopg.connect(**postgres_params(self._database), autocommit=True, connect_timeout=3)
            self._listener.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as exc:
            log.warning("cannot LISTEN for reloads (%s); the poll every sync period remains", exc)
            self._drop_listener()
        return self._listener

    def _drain_notifies(self) -> None:
        try:
            for _ in self._listener.notifies(timeout=0):
                pass
        except Exception:  # noqa: BLE001 - a broken connection: listen again next time
            self._drop_listener()

    def _drop_listener(self) -> None:
        if self._listener is not None:
            try:
                self._listener.close()
            except Exception:  # noqa: BLE001
                pass
        self._listener = None


def wake(pids: Iterable[int]) -> None:
    """Send a wake-up to the processes ``pids`` of this host (not to this one); never raises."""
    me = os.getpid()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        sender.setblocking(False)
        for pid in set(pids) - {me}:
            try:
                sender.sendto(b"!", _address(pid))
            except OSError:  # gone, or its queue is full (it is awake then)
                pass


def notify_hosts() -> None:
    """In the current transaction: wake every process of every host when it commits (PostgreSQL only)."""
    if is_postgres():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [CHANNEL])


def postgres_params(database: dict) -> dict:
    """psycopg.connect() arguments of a Django DATABASES entry."""
    params = {
        "dbname": database.get("NAME"),
        "user": database.get("USER") or None,
        "password": database.get("PASSWORD") or None,
        "host": database.get("HOST") or None,
        "port": database.get("PORT") or None,
    }
    return {key: value for key, value in params.items() if value}
