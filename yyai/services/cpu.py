"""The CPU pool of a worker process: request work kept off the event loop (parsing, base64, decoding, resizing).

Two ways in, both awaited on the loop:

* :func:`run_cpu` gives a call a trip of its own;
* :func:`run_shared` is for calls of tens of microseconds (a small body), where the trip costs more than the
  work (bench/NOTES.md, "Session 9"): the calls made during one pass of the event loop go to the pool as one
  trip and run one after the other in its thread.

A trip is one ``SimpleQueue.put`` on the loop, and its outcomes come back with those of every other trip that
ends before the loop has run again: one ``call_soon_threadsafe`` for all of them. A ``ThreadPoolExecutor``
trip (a concurrent future chained to an asyncio one, its locks and idle semaphore, one wake-up of the loop per
call) took 80-100 us of the loop's wall time per request under load on workload b, 20 us of it CPU; this pool
takes 29 us less of the loop's CPU per request there (bench/NOTES.md, "Session 10").
"""

from __future__ import annotations

import asyncio
import queue
import threading

from yyai.conf import yyai_settings

_gathering: dict[asyncio.AbstractEventLoop, list] = {}  # per loop, the shared calls of its current pass


class CpuPool:
    """``threads`` daemon threads running trips: lists of ``(future, function, args)`` of one event loop, each
    call's result or exception set on its future (unless cancelled) on that loop."""

    def __init__(self, threads: int, *, name: str = "cpu"):
        self._trips: queue.SimpleQueue = queue.SimpleQueue()
        self._ended: dict[asyncio.AbstractEventLoop, list] = {}  # per loop, outcomes it has not taken yet
        self._lock = threading.Lock()
        for index in range(threads):
            threading.Thread(target=self._work, name=f"{name}_{index}", daemon=True).start()

    def send(self, loop: asyncio.AbstractEventLoop, calls: list) -> None:
        """Run ``calls`` (futures of ``loop``, with what to call) in one of the threads, in order."""
        self._trips.put((loop, calls))

    def _work(self) -> None:
        while True:
            loop, calls = self._trips.get()
            outcomes = []
            for future, function, args in calls:
                try:
                    outcomes.append((future, function(*args), None))
                except BaseException as exc:  # noqa: BLE001 - the caller's, raised where it awaits
                    outcomes.append((future, None, exc))
            self._hand_back(loop, outcomes)

    def _hand_back(self, loop: asyncio.AbstractEventLoop, outcomes: list) -> None:
        """Give ``outcomes`` to ``loop``: with the others waiting for it, else in a new callback."""
        with self._lock:
            waiting = self._ended.get(loop)
            if waiting is not None:  # a callback is on its way: it takes these too
                waiting.extend(outcomes)
                return
            self._ended[loop] = outcomes
        try:
            loop.call_soon_threadsafe(self._settle, loop)
        except RuntimeError:  # the loop has closed: nobody is waiting any more
            with self._lock:
                self._ended.pop(loop, None)

    def _settle(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            outcomes = self._ended.pop(loop)
        for future, value, error in outcomes:
            if future.cancelled():  # its request is gone
                continue
            if error is None:
                future.set_result(value)
            else:
                future.set_exception(error)


_pool: CpuPool | None = None
_pool_lock = threading.Lock()


def pool() -> CpuPool:
    """This process's pool of ``YYAI_CPU_THREADS`` threads (made on first use, in the process that uses it)."""
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = CpuPool(yyai_settings.CPU_THREADS)
    return _pool


def run_cpu(function, *args) -> asyncio.Future:
    """``function(*args)`` in the pool, a trip of its own; a future of its result or exception."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    pool().send(loop, [(future, function, args)])
    return future


def run_shared(function, *args) -> asyncio.Future:
    """``function(*args)`` in the pool, in one trip with the other shared calls of this pass of the loop (in the
    order they were made); a future of its result or exception. A long call holds up the ones after it in its
    trip: only for calls that are quick."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    calls = _gathering.get(loop)
    if calls is None:
        calls = _gathering[loop] = []
        loop.call_soon(_send, loop)  # after every task this pass wakes has made its call
    calls.append((future, function, args))
    return future


def _send(loop: asyncio.AbstractEventLoop) -> None:
    pool().send(loop, _gathering.pop(loop))
