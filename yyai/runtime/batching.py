"""Per-version dynamic batcher: requests that arrive together run as one batch.

The collate loop (after LitServe and TF Serving's batching session): one worker
thread waits for the first request, then keeps taking queued requests until the
batch holds ``max_batch_size`` rows or ``batch_timeout_micros`` have passed since
that first request; it runs the batch once through every model and hands each
caller exactly its own rows. While a batch runs, new requests queue up and form
the next batch, so batches grow with load by themselves.

* ``batch_timeout_micros = 0``: never wait; run what is queued at once.
* More than ``max_enqueued`` requests waiting: :class:`Overloaded` at once,
  never a hang.
* A request larger than ``max_batch_size`` runs as a batch of its own.
* An error in a batch fails exactly the callers in that batch.

Callers wait in one of two ways: :meth:`Batcher.submit` blocks its thread;
:meth:`Batcher.submit_async` awaits on an asyncio event loop, which the batch
thread wakes with ``call_soon_threadsafe`` (the ASGI predict path).
"""
from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from typing import Callable

import numpy as np

from .errors import AppNotAvailable, Overloaded
from .manifest import BatchingSpec

RunFn = Callable[[np.ndarray], list[np.ndarray]]
ALIGNMENT = 64  # bytes: TensorFlow's CPU kernels use a buffer so aligned as it is (loader.as_tensor)


class _LoopSignal:
    """Wakes one asyncio future from the batch thread (the awaiting side of ``done``)."""

    __slots__ = ("loop", "future")

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.future = loop.create_future()

    def set(self) -> None:
        try:
            self.loop.call_soon_threadsafe(self._resolve)
        except RuntimeError:  # the loop has closed: nobody is waiting any more
            pass

    def _resolve(self) -> None:
        if not self.future.done():  # a cancelled waiter (client gone) needs no answer
            self.future.set_result(None)


class _Pending:
    """One caller's rows, waiting for their outputs; ``done.set()`` tells the caller."""

    __slots__ = ("rows", "done", "outputs", "error")

    def __init__(self, rows: np.ndarray, done: threading.Event | _LoopSignal):
        self.rows = rows
        self.done = done
        self.outputs: list[np.ndarray] | None = None
        self.error: BaseException | None = None

    def result(self) -> list[np.ndarray]:
        if self.error is not None:
            raise self.error
        return self.outputs


class Batcher:
    """Collects concurrent :meth:`submit` calls into batches for ``run``."""

    def __init__(self, run: RunFn, spec: BatchingSpec, *, name: str = "batcher"):
        self._run = run
        self.spec = spec
        self.name = name
        self._queue: deque[_Pending] = deque()
        self._cond = threading.Condition()
        self._worker: threading.Thread | None = None
        self._closed = False
        self.batches = 0  # counters for metrics and tests
        self.rows = 0

    @property
    def depth(self) -> int:
        """Requests waiting for a batch right now."""
        return len(self._queue)

    def submit(self, rows: np.ndarray) -> list[np.ndarray]:
        """Run ``rows`` (N, ...) in the next batch; returns one (N, ...) output per model."""
        pending = self._enqueue(_Pending(rows, threading.Event()))
        pending.done.wait()
        return pending.result()

    async def submit_async(self, rows: np.ndarray) -> list[np.ndarray]:
        """:meth:`submit` for a coroutine: the event loop keeps serving while the batch runs."""
        signal = _LoopSignal(asyncio.get_running_loop())
        pending = self._enqueue(_Pending(rows, signal))
        await signal.future
        return pending.result()

    def _enqueue(self, pending: _Pending) -> _Pending:
        """Queue ``pending`` for the next batch, or raise Overloaded / AppNotAvailable at once."""
        with self._cond:
            if self._closed:
                raise AppNotAvailable(f"{self.name} is unloading; retry")
            if len(self._queue) >= self.spec.max_enqueued:
                raise Overloaded(f"{self.name}: {len(self._queue)} requests are queued (limit "
                                 f"{self.spec.max_enqueued}); retry shortly", retry_after=1)
            self._queue.append(pending)
            if self._worker is None:
                self._worker = threading.Thread(target=self._loop, name=f"batcher:{self.name}", daemon=True)
                self._worker.start()
            self._cond.notify()
        return pending

    def close(self) -> None:
        """Finish what is queued, then stop the worker thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            batch = self._collect()
            if batch is None:
                return
            self._execute(batch)

    def _collect(self) -> list[_Pending] | None:
        """Block for the first request, then gather more until full or the deadline."""
        limit = self.spec.max_batch_size
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            batch = [self._queue.popleft()]
            rows = len(batch[0].rows)
            deadline = time.monotonic() + self.spec.batch_timeout_micros / 1e6
            while rows < limit:
                if self._queue:
                    if rows + len(self._queue[0].rows) > limit:
                        break
                    item = self._queue.popleft()
                    batch.append(item)
                    rows += len(item.rows)
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    break
                self._cond.wait(remaining)
            return batch

    def _execute(self, batch: list[_Pending]) -> None:
        try:
            rows = aligned_concatenate([p.rows for p in batch])
            outputs = self._run(rows)
        except BaseException as exc:  # hand every caller the failure, never kill the worker
            for pending in batch:
                pending.error = exc
                pending.done.set()
            return
        self.batches += 1
        self.rows += len(rows)
        start = 0
        for pending in batch:
            stop = start + len(pending.rows)
            pending.outputs = [out[start:stop] for out in outputs]
            pending.done.set()
            start = stop


def aligned_concatenate(parts: list[np.ndarray], alignment: int = ALIGNMENT) -> np.ndarray:
    """``np.concatenate(parts)`` into a new buffer that starts on an ``alignment``-byte boundary.

    TensorFlow takes such a batch without copying it (yyai.runtime.loader.as_tensor).
    """
    first = parts[0]
    shape = (sum(len(p) for p in parts), *first.shape[1:])
    nbytes = int(np.prod(shape)) * first.dtype.itemsize
    raw = np.empty(nbytes + alignment, np.uint8)
    start = -raw.ctypes.data % alignment
    out = raw[start:start + nbytes].view(first.dtype).reshape(shape)
    return np.concatenate(parts, out=out)
