"""The CPU pool of a worker process: request work kept off the event loop (parsing, base64, decoding, resizing).

Two ways in, both awaited on the loop:

* :func:`run_cpu` gives a call a trip of its own: one pool task, one wake-up of the loop when it is done;
* :func:`run_shared` is for calls of tens of microseconds (a small body), where the trip costs more than the
  work (bench/NOTES.md, "Session 9"): the calls made during one pass of the event loop go to the pool as one
  task, run one after the other in its thread, and come back in one wake-up of the loop.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from concurrent.futures import ThreadPoolExecutor

from yyai.conf import yyai_settings

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_gathering: dict[asyncio.AbstractEventLoop, list] = {}  # per loop, the shared calls of its current pass


def pool() -> ThreadPoolExecutor:
    """This process's bounded pool of ``YYAI_CPU_THREADS`` threads (made on first use)."""
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=yyai_settings.CPU_THREADS, thread_name_prefix="cpu")
    return _pool


async def run_cpu(function, *args):
    """``function(*args)`` in the pool, a trip of its own, awaited."""
    return await asyncio.get_running_loop().run_in_executor(pool(), functools.partial(function, *args))


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
    calls = _gathering.pop(loop)
    try:
        pool().submit(_run_all, loop, calls)
    except RuntimeError as exc:  # the pool has shut down (the interpreter is exiting)
        _settle([(future, None, exc) for future, _, _ in calls])


def _run_all(loop: asyncio.AbstractEventLoop, calls: list) -> None:
    outcomes = []
    for future, function, args in calls:
        try:
            outcomes.append((future, function(*args), None))
        except BaseException as exc:  # noqa: BLE001 - the caller's, raised where it awaits
            outcomes.append((future, None, exc))
    try:
        loop.call_soon_threadsafe(_settle, outcomes)
    except RuntimeError:  # the loop has closed: nobody is waiting any more
        pass


def _settle(outcomes: list) -> None:
    for future, value, error in outcomes:
        if future.cancelled():  # its request is gone
            continue
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error)
