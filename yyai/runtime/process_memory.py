"""What this process holds in memory, and giving back the memory of versions it no longer serves."""

from __future__ import annotations

import ctypes
import gc
import os
import threading
import time
import weakref
from typing import Protocol


class Retired(Protocol):
    """A version swapped out or unloaded (a ServingVersion): when it loaded, and whether it has ended."""

    loaded_at: float

    @property
    def ended(self) -> bool: ...


PAGE = os.sysconf("SC_PAGE_SIZE")
# Reading smaps_rollup walks every page table of the process: 13 ms in a worker that holds TensorFlow, work the
# kernel does on a serving core. PSS moves slowly, so it is read at most this often (bench/NOTES.md, "Session 7").
PSS_MAX_AGE_SECONDS = 30.0
_pss_lock = threading.Lock()
_pss: tuple[int, float, int] | None = None  # (pid, time.monotonic() when read, bytes): a forked child reads its own
RELEASE_GRACE_SECONDS = 1.0
_release_lock = threading.Lock()
_frozen_at = 0.0  # time.time() of the last freeze(): versions loaded before it are frozen


def resident_bytes() -> int:
    """This process's resident set size now (cheap: one read of /proc/self/statm)."""
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * PAGE


def process_memory() -> dict[str, int]:
    """What this process really holds: ``rss`` (now), and ``pss`` (shared pages divided among their processes,
    read at most every PSS_MAX_AGE_SECONDS; 0 where the kernel has no smaps_rollup)."""
    return {"rss": resident_bytes(), "pss": _proportional_bytes()}


def _proportional_bytes() -> int:
    global _pss
    with _pss_lock:
        if _pss is None or _pss[0] != os.getpid() or time.monotonic() - _pss[1] >= PSS_MAX_AGE_SECONDS:
            _pss = (os.getpid(), time.monotonic(), _read_pss())
        return _pss[2]


def _read_pss() -> int:
    try:
        with open("/proc/self/smaps_rollup", encoding="ascii") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # no smaps_rollup (old kernels): PSS unknown
        pass
    return 0


def freeze() -> None:
    """Collect, then freeze what is alive (``gc.freeze()``): full collections never scan it again (gunicorn
    after start-up: TensorFlow, Keras and Django leave ~400k objects, 0.5-0.8 s of pause per full collection)."""
    global _frozen_at
    gc.collect()
    gc.freeze()
    _frozen_at = time.time()


def release_when_idle(old: Retired | None, *, timeout: float = 300.0) -> threading.Thread | None:
    """Once ``old`` (a version swapped out or unloaded) has served its last request, let the garbage collector
    free it and give the freed heap back to the system; the thread doing so, or None when nothing is frozen.

    Frozen objects (:func:`freeze`) are never collected, and a Keras model is
    full of reference cycles. So a version loaded before the last freeze is
    released by unfreezing, collecting and freezing again (one collection pause
    per release); one loaded after it by a collection, which scans only what
    is not frozen (under a millisecond for ten small models). Then glibc's
    ``malloc_trim``. With nothing frozen, Python's own collections free it.
    """
    if old is None or gc.get_freeze_count() == 0:
        return None
    frozen = old.loaded_at <= _frozen_at
    retired = weakref.ref(old)  # a strong reference here would keep it alive through the collection

    def ended() -> bool:
        version = retired()
        return version is None or version.ended

    def wait_then_collect() -> None:
        deadline = time.monotonic() + timeout
        while not ended() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(RELEASE_GRACE_SECONDS)  # the reloading call and the batcher thread let go of it
        with _release_lock:
            if frozen:
                gc.unfreeze()
                freeze()
            else:
                gc.collect()
            _trim_heap()

    thread = threading.Thread(target=wait_then_collect, name="release-old-version", daemon=True)
    thread.start()
    return thread


def _trim_heap() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the allocator keeps the memory for the next load
        pass
