"""Per-version dynamic batcher: requests that arrive together run as one batch.

The collate loop (after LitServe and TF Serving's batching session): one worker
thread waits for the first request, then keeps taking queued requests until the
batch holds ``max_batch_size`` rows or ``batch_timeout_micros`` have passed since
that first request; it runs the batch once through every model and hands each
caller exactly its own rows. While a batch runs, new requests queue up and form
the next batch, so batches grow with load by themselves.

A request is a :class:`Job`: named input arrays with a leading row axis, for one
signature. Only jobs of the same signature whose inputs have the same dtypes and
row shapes share a batch (images at their own size never meet); the others wait
in order for a batch of their own. A job of an unbatched signature always runs
alone.

* ``batch_timeout_micros = 0``: never wait; run what is queued at once.
* More than ``max_enqueued`` requests, or more than ``max_enqueued_bytes`` of
  their inputs, waiting: :class:`Overloaded` at once, never a hang. One
  request larger than ``max_enqueued_bytes`` alone is :class:`PayloadTooLarge`.
* A request larger than ``max_batch_size`` runs as a batch of its own.
* Batches are put together in memory kept from one batch to the next
  (:class:`feed.BatchBuffers`), given back once the batcher has been idle
  for ``IDLE_SECONDS``.
* An error in a batch fails exactly the callers in that batch; when it is the
  input's fault (:class:`InputError`, such as a model refusing a token id),
  each caller of the batch runs again alone, so only those whose own rows the
  model refuses get the error.

Callers wait in one of two ways: :meth:`Batcher.submit` blocks its thread;
:meth:`Batcher.submit_async` awaits on an asyncio event loop, which the batch
thread wakes with one ``call_soon_threadsafe`` per batch (the ASGI predict path).

Tracing (``yyai.tracing``) watches through :data:`observer`: None (the
default) costs one test per request and one per batch, and nothing else.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from .errors import AppNotAvailable, InputError, Overloaded, PayloadTooLarge
from .feed import BatchBuffers
from .manifest import BatchingSpec

Outputs = list[dict[str, np.ndarray]]  # per model, named outputs with a leading row axis
IDLE_SECONDS = 1.0  # a batcher with nothing queued for this long gives its batch memory back (feed.BatchBuffers)
RunFn = Callable[[str, dict[str, np.ndarray]], Outputs]


class Observer(Protocol):
    """Watches jobs and batches (``yyai.tracing``); never raises. ``enqueued`` runs in the caller's thread or
    task as a job is queued and gives the job's ``mark``; ``ran`` runs in the batch thread once the callers of a
    batch (each with ``mark``, ``job.rows``, ``error``) have their answers, the batch having started at
    ``started_ns`` (time.time_ns); ``name`` is the batcher's (``app@version``)."""

    def enqueued(self) -> object: ...

    def ran(self, name: str, batch: list, started_ns: int) -> None: ...


observer: Observer | None = None  # set by yyai.tracing when traces are on


@dataclass(frozen=True)
class Job:
    """Named input arrays (rows first) for ``signature``; ``batched=False`` runs it alone."""

    signature: str
    inputs: dict[str, np.ndarray]
    batched: bool = True
    rows: int = field(init=False)
    key: tuple | None = field(init=False)
    nbytes: int = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "rows", len(next(iter(self.inputs.values()))))
        object.__setattr__(self, "nbytes", sum(_nbytes(a) for a in self.inputs.values()))
        key = (self.signature, *((name, a.dtype.str, a.shape[1:]) for name, a in self.inputs.items()))
        object.__setattr__(self, "key", key if self.batched else None)


def _wake(batch: list[_Pending]) -> None:
    """Tell the callers of ``batch`` their answers are in: a blocked thread by its event; the coroutines of
    one event loop by one ``call_soon_threadsafe`` for all of their futures (one wake-up of that loop per batch)."""
    loops: dict[asyncio.AbstractEventLoop, list[asyncio.Future]] = {}
    for pending in batch:
        done = pending.done
        if isinstance(done, asyncio.Future):
            loops.setdefault(done.get_loop(), []).append(done)
        else:
            done.set()
    for loop, futures in loops.items():
        with suppress(RuntimeError):  # the loop has closed: nobody is waiting any more
            loop.call_soon_threadsafe(_resolve, futures)


def _resolve(futures: list[asyncio.Future]) -> None:
    for future in futures:
        if not future.done():  # a cancelled waiter (client gone) needs no answer
            future.set_result(None)


class _Pending:
    """One caller's job, waiting for its outputs; :func:`_wake` tells the caller, through ``done``."""

    __slots__ = ("job", "done", "outputs", "error", "mark")

    def __init__(self, job: Job, done: threading.Event | asyncio.Future):
        self.job = job
        self.done = done
        self.outputs: Outputs | None = None
        self.error: BaseException | None = None
        self.mark = None if observer is None else observer.enqueued()

    def result(self) -> Outputs:
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
        self._queued_bytes = 0
        self._buffers = BatchBuffers(spec.max_batch_size)
        self.batches = 0  # counters for metrics and tests
        self.rows = 0

    @property
    def depth(self) -> int:
        """Requests waiting for a batch right now."""
        return len(self._queue)

    def submit(self, job: Job) -> Outputs:
        """Run ``job`` (N rows) in the next batch it fits; returns per model its named (N, ...) outputs."""
        pending = self._enqueue(_Pending(job, threading.Event()))
        pending.done.wait()
        return pending.result()

    def submit_all(self, jobs: list[Job]) -> list[Outputs]:
        """:meth:`submit` for several jobs at once (they may share batches); outputs in job order."""
        pending = [self._enqueue(_Pending(job, threading.Event())) for job in jobs]
        for item in pending:
            item.done.wait()
        return [item.result() for item in pending]

    async def submit_async(self, job: Job) -> Outputs:
        """:meth:`submit` for a coroutine: the event loop keeps serving while the batch runs."""
        done = asyncio.get_running_loop().create_future()
        pending = self._enqueue(_Pending(job, done))
        await done
        return pending.result()

    def _enqueue(self, pending: _Pending) -> _Pending:
        """Queue ``pending`` for the next batch, or raise Overloaded / AppNotAvailable at once."""
        budget = self.spec.max_enqueued_bytes
        if pending.job.nbytes > budget:
            raise PayloadTooLarge(
                f"this request is {pending.job.nbytes} bytes of model input; {self.name} admits "
                f"at most {budget} bytes at once: send fewer rows or smaller images"
            )
        with self._cond:
            if self._closed:
                raise AppNotAvailable(f"{self.name} is unloading; retry")
            if len(self._queue) >= self.spec.max_enqueued:
                raise Overloaded(
                    f"{self.name}: {len(self._queue)} requests are queued (limit "
                    f"{self.spec.max_enqueued}); retry shortly",
                    retry_after=1,
                )
            if self._queued_bytes + pending.job.nbytes > budget:
                raise Overloaded(
                    f"{self.name}: {self._queued_bytes} bytes of input are queued (limit {budget}); retry shortly",
                    retry_after=1,
                )
            self._queued_bytes += pending.job.nbytes
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
        """Block for the first request, then gather more of its kind until full or the deadline."""
        limit = self.spec.max_batch_size
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                if not self._cond.wait(IDLE_SECONDS if self._buffers else None):
                    self._buffers.clear()  # idle for IDLE_SECONDS: the batch memory goes back
            first = self._take(0)
            batch, key, rows = [first], first.job.key, first.job.rows
            if key is None:  # unbatched: alone
                return batch
            deadline = time.monotonic() + self.spec.batch_timeout_micros / 1e6
            while rows < limit:
                item = self._take_matching(key, limit - rows)
                if item is not None:
                    batch.append(item)
                    rows += item.job.rows
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    break
                self._cond.wait(remaining)
            return batch

    def _take_matching(self, key: tuple, room: int) -> _Pending | None:
        """The first queued job of ``key`` if it fits in ``room`` rows (others keep their place); else None."""
        for index, pending in enumerate(self._queue):
            if pending.job.key == key:
                return self._take(index) if pending.job.rows <= room else None
        return None

    def _take(self, index: int) -> _Pending:
        """Remove the queued job at ``index`` (under the lock); its bytes leave the budget."""
        pending = self._queue[index]
        del self._queue[index]
        self._queued_bytes -= pending.job.nbytes
        return pending

    @property
    def queued_bytes(self) -> int:
        """Bytes of model input waiting for a batch right now."""
        return self._queued_bytes

    def _execute(self, batch: list[_Pending]) -> None:
        watch = observer
        if watch is None:
            return self._run_batch(batch)
        started_ns = time.time_ns()
        self._run_batch(batch)
        watch.ran(self.name, batch, started_ns)

    def _run_batch(self, batch: list[_Pending]) -> None:
        first = batch[0].job
        try:
            alone = len(batch) == 1  # its arrays as they are; feed.Scaled pixels written out as values
            parts = {name: [p.job.inputs[name] for p in batch] for name in first.inputs}
            inputs = {
                n: a[0] if alone and isinstance(a[0], np.ndarray) else self._buffers.concatenate(n, a)
                for n, a in parts.items()
            }
            outputs = self._run(first.signature, inputs)
            self._buffers.drop_shared(outputs)
        except InputError as exc:  # some caller's own rows: each caller again alone, so only theirs fail
            if len(batch) > 1:
                for pending in batch:
                    self._execute([pending])
                return
            batch[0].error = exc
            _wake(batch)
            return
        except BaseException as exc:  # hand every caller the failure, never kill the worker
            for pending in batch:
                pending.error = exc
            _wake(batch)
            return
        self.batches += 1
        self.rows += sum(p.job.rows for p in batch)
        start = 0
        for pending in batch:
            stop = start + pending.job.rows
            pending.outputs = (
                outputs
                if len(batch) == 1
                else [{name: value[start:stop] for name, value in model.items()} for model in outputs]
            )
            start = stop
        _wake(batch)


def _nbytes(array: np.ndarray) -> int:
    """Memory an input holds: its buffer, and for strings the bytes they point to."""
    if array.dtype == object:
        return array.nbytes + sum(len(item) for item in array.reshape(-1) if isinstance(item, bytes))
    return array.nbytes
