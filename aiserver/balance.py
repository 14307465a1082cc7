"""Connections spread evenly over a host's workers: a crowded worker closes kept-alive connections until even.

The workers share one listening socket, and whichever is waiting in epoll when connections arrive accepts
them all: 64 connections opened at once were seen to land 58 on one worker and 6 on the other (bench/NOTES.md,
"Session 8"). For as long as those connections live, one worker does nearly all the work at twice the latency
while the other idles.

So each worker counts its open connections in memory the workers share: the master makes a table before it
forks (:func:`prepare`), every worker takes a slot (:func:`join`), and the master frees a dead worker's slot
(:func:`forget`). A worker holding more than its even share of the host's connections plus SLACK answers its
next request with ``Connection: close`` (:func:`crowded`); the client's new connection goes to whichever
worker accepts first, most often the one waiting idle, and the worker closes connections until it is within
its share. A single worker, or a process not under gunicorn, never closes one.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os

from yyai.runtime.processes import alive

SLOTS = 256  # at most this many live workers share the table
SLACK = 2  # connections above the even share before a worker closes one

_table: _Table | None = None
_leaving = 0  # this worker's connections told to close whose client has not gone yet


class _Table:
    """Per slot: the worker's pid (0: free) and its open connections; in anonymous shared memory."""

    def __init__(self):
        self.pids = multiprocessing.RawArray(ctypes.c_int, SLOTS)
        self.connections = multiprocessing.RawArray(ctypes.c_int, SLOTS)
        self.used = multiprocessing.RawValue(ctypes.c_int)  # slots ever taken: the others are all free
        self.lock = multiprocessing.Lock()
        self.slot: int | None = None  # this process's, once joined


def prepare() -> None:
    """In the master, before it forks any worker: the shared table."""
    global _table
    _table = _Table()


def join() -> None:
    """In a worker after fork: take a free slot (one whose worker is gone, if need be)."""
    if _table is None:
        return
    with _table.lock:
        for slot in range(SLOTS):
            pid = _table.pids[slot]
            if pid == 0 or not alive(pid):
                _table.connections[slot] = 0
                _table.pids[slot] = os.getpid()
                _table.used.value = max(_table.used.value, slot + 1)
                _table.slot = slot
                return


def slot() -> int | None:
    """This worker's place in the table (0, 1, ...: a dead worker's place goes to the worker replacing it);
    None outside gunicorn."""
    return None if _table is None else _table.slot


def forget(pid: int) -> None:
    """In the master, when worker ``pid`` has exited: its slot and its connections leave the table."""
    if _table is None:
        return
    with _table.lock:
        for slot in range(_table.used.value):
            if _table.pids[slot] == pid:
                _table.pids[slot] = 0
                _table.connections[slot] = 0


def count(connections: int) -> None:
    """This worker now has ``connections`` open (those told to close not counted)."""
    if _table is not None and _table.slot is not None:
        _table.connections[_table.slot] = connections - _leaving


def crowded(connections: int) -> bool:
    """Whether this worker, with ``connections`` open, holds more than its even share of the host's plus SLACK.
    When it does, the caller closes one (:func:`leaving`)."""
    if _table is None or _table.slot is None:
        return False
    used = _table.used.value
    total = workers = 0
    for pid, open_ in zip(_table.pids[:used], _table.connections[:used]):  # noqa: B905 - both of length used
        if pid:
            total += open_
            workers += 1
    return workers > 1 and (connections - _leaving) * workers > total + SLACK * workers


def leaving(connections: int, change: int) -> None:
    """One of this worker's ``connections`` was told to close (``change`` 1), or such a one has gone (-1): it
    counts as gone from the start, else the worker would go on closing others until its client leaves."""
    global _leaving
    _leaving += change
    count(connections)
