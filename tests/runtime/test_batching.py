"""The dynamic batcher: exact rows per caller, timeout, queue limit, failures."""
import asyncio
import threading
import time

import numpy as np
import pytest

from yyai.runtime.batching import Batcher
from yyai.runtime.errors import Overloaded
from yyai.runtime.manifest import BatchingSpec


class Recorder:
    """A fixed-weight 'model' (row sum times 2 and times 3) that records its batch sizes."""

    def __init__(self, delay=0.0, fail_on=None):
        self.sizes, self.delay, self.fail_on = [], delay, fail_on

    def __call__(self, batch):
        self.sizes.append(len(batch))
        time.sleep(self.delay)
        if self.fail_on is not None and np.any(batch == self.fail_on):
            raise ValueError("poisoned batch")
        sums = batch.reshape(len(batch), -1).sum(axis=1, keepdims=True)
        return [sums * 2, sums * 3]


def submit_all(batcher, requests):
    results, errors = [None] * len(requests), [None] * len(requests)

    def call(i):
        try:
            results[i] = batcher.submit(requests[i])
        except Exception as exc:
            errors[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    return results, errors


def test_each_caller_gets_exactly_its_rows():
    model = Recorder(delay=0.01)
    batcher = Batcher(model, BatchingSpec(max_batch_size=16, batch_timeout_micros=5000, max_enqueued=100))
    rng = np.random.default_rng(0)
    requests = [rng.random((int(rng.integers(1, 4)), 2, 2), dtype=np.float32) for _ in range(40)]
    results, errors = submit_all(batcher, requests)
    assert errors == [None] * 40
    for rows, (twice, thrice) in zip(requests, results):
        sums = rows.reshape(len(rows), -1).sum(axis=1, keepdims=True)
        np.testing.assert_allclose(twice, sums * 2, rtol=1e-6)
        np.testing.assert_allclose(thrice, sums * 3, rtol=1e-6)
    assert max(model.sizes) > 1, "concurrent requests should have shared a batch"
    assert max(model.sizes) <= 16
    assert batcher.rows == sum(len(r) for r in requests)


def test_lone_request_not_held_past_timeout():
    batcher = Batcher(Recorder(), BatchingSpec(max_batch_size=32, batch_timeout_micros=50_000))
    started = time.perf_counter()
    batcher.submit(np.ones((1, 2), np.float32))
    elapsed = time.perf_counter() - started
    assert 0.045 <= elapsed < 1.0


def test_zero_timeout_runs_at_once():
    model = Recorder()
    batcher = Batcher(model, BatchingSpec(max_batch_size=32, batch_timeout_micros=0))
    for _ in range(3):
        batcher.submit(np.ones((1, 2), np.float32))
    assert model.sizes == [1, 1, 1]


def test_full_queue_refuses_at_once():
    gate, running = threading.Event(), threading.Event()

    def blocked(batch):
        running.set()
        gate.wait(5)
        return [batch]

    batcher = Batcher(blocked, BatchingSpec(max_batch_size=1, batch_timeout_micros=0, max_enqueued=2))
    threads = [threading.Thread(target=batcher.submit, args=(np.ones((1, 1)),)) for _ in range(3)]
    threads[0].start()
    assert running.wait(5)  # the first request is in the model, blocked
    for t in threads[1:]:  # the next two wait in the queue
        t.start()
    deadline = time.monotonic() + 5
    while batcher.depth < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.perf_counter()
    with pytest.raises(Overloaded) as info:
        batcher.submit(np.ones((1, 1)))
    assert time.perf_counter() - started < 0.5 and info.value.retry_after >= 1
    gate.set()
    for t in threads:
        t.join(5)


def test_failure_fails_only_its_batch_and_worker_survives():
    batcher = Batcher(Recorder(fail_on=-1.0), BatchingSpec(max_batch_size=4, batch_timeout_micros=0))
    with pytest.raises(ValueError, match="poisoned"):
        batcher.submit(np.full((1, 2), -1.0, np.float32))
    twice, _ = batcher.submit(np.ones((1, 2), np.float32))
    assert twice.tolist() == [[4.0]]


def test_oversized_request_runs_alone():
    model = Recorder()
    batcher = Batcher(model, BatchingSpec(max_batch_size=4, batch_timeout_micros=0))
    twice, _ = batcher.submit(np.ones((10, 1), np.float32))
    assert twice.shape == (10, 1) and model.sizes == [10]


def test_close_drains_then_stops():
    batcher = Batcher(Recorder(), BatchingSpec(batch_timeout_micros=0))
    batcher.submit(np.ones((1, 1), np.float32))
    worker = batcher._worker
    batcher.close()
    worker.join(2)
    assert not worker.is_alive()


# -- callers on an asyncio event loop (submit_async: the ASGI predict path) ---------------------------

def test_async_callers_and_threads_share_batches_and_get_their_rows():
    model = Recorder(delay=0.01)
    batcher = Batcher(model, BatchingSpec(max_batch_size=16, batch_timeout_micros=5000, max_enqueued=100))
    rng = np.random.default_rng(1)
    async_requests = [rng.random((int(rng.integers(1, 4)), 2, 2), dtype=np.float32) for _ in range(30)]
    thread_requests = [rng.random((2, 2, 2), dtype=np.float32) for _ in range(10)]

    async def main():
        return await asyncio.gather(*(batcher.submit_async(rows) for rows in async_requests))

    threaded = threading.Thread(target=lambda: thread_results.extend(submit_all(batcher, thread_requests)))
    thread_results = []
    threaded.start()
    results = asyncio.run(main())
    threaded.join(timeout=10)
    for rows, (twice, thrice) in zip(async_requests + thread_requests, results + thread_results[0]):
        sums = rows.reshape(len(rows), -1).sum(axis=1, keepdims=True)
        np.testing.assert_allclose(twice, sums * 2, rtol=1e-6)
        np.testing.assert_allclose(thrice, sums * 3, rtol=1e-6)
    assert thread_results[1] == [None] * 10
    assert max(model.sizes) > 1, "the event loop's callers should have shared a batch"
    assert batcher.rows == sum(len(r) for r in async_requests + thread_requests)


def test_async_failure_reaches_only_its_batch():
    batcher = Batcher(Recorder(fail_on=-1.0), BatchingSpec(max_batch_size=1, batch_timeout_micros=0, max_enqueued=10))

    async def main():
        return await asyncio.gather(batcher.submit_async(np.full((1, 2), -1.0, np.float32)),
                                    batcher.submit_async(np.ones((1, 2), np.float32)), return_exceptions=True)

    bad, good = asyncio.run(main())
    assert isinstance(bad, ValueError)
    np.testing.assert_allclose(good[0], [[4.0]])


def test_async_full_queue_refuses_without_waiting():
    release = threading.Event()
    batcher = Batcher(lambda batch: (release.wait(5), [batch])[1],
                      BatchingSpec(max_batch_size=1, batch_timeout_micros=0, max_enqueued=1))

    async def main():
        first = asyncio.ensure_future(batcher.submit_async(np.ones((1, 1), np.float32)))  # runs, blocks the worker
        await asyncio.sleep(0.1)
        second = asyncio.ensure_future(batcher.submit_async(np.ones((1, 1), np.float32)))  # queued
        await asyncio.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(Overloaded):
            await batcher.submit_async(np.ones((1, 1), np.float32))
        refused_in = time.monotonic() - started
        release.set()
        await asyncio.gather(first, second)
        return refused_in

    assert asyncio.run(main()) < 0.05


async def submit_then_cancel(batcher):
    """A caller that goes away (its task cancelled) while its batch runs."""
    gone = asyncio.ensure_future(batcher.submit_async(np.ones((1, 2), np.float32)))
    await asyncio.sleep(0.05)
    gone.cancel()


def test_cancelled_async_caller_does_not_break_the_batcher():
    """A client that goes away mid-batch leaves the others and the worker unharmed."""
    model = Recorder(delay=0.2)
    batcher = Batcher(model, BatchingSpec(max_batch_size=4, batch_timeout_micros=0, max_enqueued=10))

    async def main():
        await submit_then_cancel(batcher)
        return await batcher.submit_async(np.full((1, 2), 2.0, np.float32))

    (twice, _) = asyncio.run(main())
    np.testing.assert_allclose(twice, [[8.0]])
    results, _ = submit_all(batcher, [np.ones((1, 2), np.float32)])  # joins with a timeout: no hang on failure
    assert results[0][0].tolist() == [[4.0]]


def test_result_for_a_closed_loop_is_dropped_quietly():
    """The batch thread must survive a caller whose event loop has already shut down."""
    model = Recorder(delay=0.3)
    batcher = Batcher(model, BatchingSpec(max_batch_size=4, batch_timeout_micros=0, max_enqueued=10))

    asyncio.run(submit_then_cancel(batcher))  # the loop is closed while the batch still runs
    time.sleep(0.4)
    results, _ = submit_all(batcher, [np.ones((1, 2), np.float32)])  # the worker thread is still alive
    assert results[0] is not None and results[0][0].tolist() == [[4.0]]
