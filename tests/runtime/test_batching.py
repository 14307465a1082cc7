"""The dynamic batcher: exact rows per caller, timeout, queue limit, failures."""

import asyncio
import threading
import time

import numpy as np
import pytest

from yyai.runtime import batching
from yyai.runtime.batching import Batcher, Job
from yyai.runtime.errors import ModelRejectedInput, Overloaded
from yyai.runtime.manifest import BatchingSpec


class Recorder:
    """Two fixed-weight 'models' (row sum times 2 and times 3) that record their batch sizes and shapes."""

    def __init__(self, delay=0.0, fail_on=None, refuse=None):
        self.sizes, self.shapes, self.delay, self.fail_on, self.refuse = [], [], delay, fail_on, refuse

    def __call__(self, signature, inputs):
        batch = inputs["x"]
        self.sizes.append(len(batch))
        self.shapes.append(batch.shape[1:])
        time.sleep(self.delay)
        if self.fail_on is not None and np.any(batch == self.fail_on):
            raise ValueError("poisoned batch")
        if self.refuse is not None and np.any(batch == self.refuse):
            raise ModelRejectedInput(f"model refused the input: {self.refuse} is not in [0, 10)")
        sums = batch.reshape(len(batch), -1).sum(axis=1, keepdims=True)
        return [{"y": sums * 2}, {"y": sums * 3}]


def job(rows, batched=True):
    return Job("serving_default", {"x": np.asarray(rows)}, batched=batched)


def submit(batcher, rows, batched=True):
    """Both models' outputs for ``rows``, through the batcher."""
    return [named["y"] for named in batcher.submit(job(rows, batched))]


async def submit_async(batcher, rows):
    return [named["y"] for named in await batcher.submit_async(job(rows))]


def submit_all(batcher, requests):
    results, errors = [None] * len(requests), [None] * len(requests)

    def call(i):
        try:
            results[i] = submit(batcher, requests[i])
        except Exception as exc:
            errors[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    return results, errors


def assert_each_got_its_rows(requests, results):
    """Recorder's outputs for each caller: twice and thrice the sum of each of its own rows, in order."""
    for rows, (twice, thrice) in zip(requests, results, strict=True):
        sums = rows.reshape(len(rows), -1).sum(axis=1, keepdims=True)
        np.testing.assert_allclose(twice, sums * 2, rtol=1e-6)
        np.testing.assert_allclose(thrice, sums * 3, rtol=1e-6)


def test_each_caller_gets_exactly_its_rows():
    model = Recorder(delay=0.01)
    batcher = Batcher(model, BatchingSpec(max_batch_size=16, batch_timeout_micros=5000, max_enqueued=100))
    rng = np.random.default_rng(0)
    requests = [rng.random((int(rng.integers(1, 4)), 2, 2), dtype=np.float32) for _ in range(40)]
    results, errors = submit_all(batcher, requests)
    assert errors == [None] * 40
    assert_each_got_its_rows(requests, results)
    assert max(model.sizes) > 1, "concurrent requests should have shared a batch"
    assert max(model.sizes) <= 16
    assert batcher.rows == sum(len(r) for r in requests)


def test_lone_request_not_held_past_timeout():
    batcher = Batcher(Recorder(), BatchingSpec(max_batch_size=32, batch_timeout_micros=50_000))
    started = time.perf_counter()
    submit(batcher, np.ones((1, 2), np.float32))
    elapsed = time.perf_counter() - started
    assert 0.045 <= elapsed < 1.0


def test_zero_timeout_runs_at_once():
    model = Recorder()
    batcher = Batcher(model, BatchingSpec(max_batch_size=32, batch_timeout_micros=0))
    for _ in range(3):
        submit(batcher, np.ones((1, 2), np.float32))
    assert model.sizes == [1, 1, 1]


def test_full_queue_refuses_at_once():
    gate, running = threading.Event(), threading.Event()

    def blocked(signature, inputs):
        running.set()
        gate.wait(5)
        return [{"y": inputs["x"]}]

    batcher = Batcher(blocked, BatchingSpec(max_batch_size=1, batch_timeout_micros=0, max_enqueued=2))
    threads = [threading.Thread(target=submit, args=(batcher, np.ones((1, 1)))) for _ in range(3)]
    threads[0].start()
    assert running.wait(5)  # the first request is in the model, blocked
    for t in threads[1:]:  # the next two wait in the queue
        t.start()
    deadline = time.monotonic() + 5
    while batcher.depth < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.perf_counter()
    with pytest.raises(Overloaded) as info:
        submit(batcher, np.ones((1, 1)))
    assert time.perf_counter() - started < 0.5 and info.value.retry_after >= 1
    gate.set()
    for t in threads:
        t.join(5)


def test_failure_fails_only_its_batch_and_worker_survives():
    batcher = Batcher(Recorder(fail_on=-1.0), BatchingSpec(max_batch_size=4, batch_timeout_micros=0))
    with pytest.raises(ValueError, match="poisoned"):
        submit(batcher, np.full((1, 2), -1.0, np.float32))
    twice, _ = submit(batcher, np.ones((1, 2), np.float32))
    assert twice.tolist() == [[4.0]]


def test_a_refused_input_fails_only_its_own_callers_and_the_rest_of_the_batch_runs_again():
    recorder = Recorder(delay=0.05, refuse=99.0)
    batcher = Batcher(recorder, BatchingSpec(max_batch_size=8, batch_timeout_micros=0))
    blocker = threading.Thread(target=submit, args=(batcher, np.zeros((1, 2), np.float32)))
    blocker.start()  # holds the worker while the four callers queue up behind it: they meet in one batch
    time.sleep(0.02)
    requests = [np.full((1, 2), value, np.float32) for value in (1.0, 99.0, 2.0, 99.0)]
    results, errors = submit_all(batcher, requests)
    blocker.join()
    assert [type(e).__name__ if e else None for e in errors] == [None, "ModelRejectedInput", None, "ModelRejectedInput"]
    assert results[0][0].tolist() == [[4.0]] and results[2][0].tolist() == [[8.0]]
    assert 4 in recorder.sizes and recorder.sizes.count(1) >= 5, recorder.sizes  # the batch, then each alone


def test_oversized_request_runs_alone():
    model = Recorder()
    batcher = Batcher(model, BatchingSpec(max_batch_size=4, batch_timeout_micros=0))
    twice, _ = submit(batcher, np.ones((10, 1), np.float32))
    assert twice.shape == (10, 1) and model.sizes == [10]


def test_close_drains_then_stops():
    batcher = Batcher(Recorder(), BatchingSpec(batch_timeout_micros=0))
    submit(batcher, np.ones((1, 1), np.float32))
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
        return await asyncio.gather(*(submit_async(batcher, rows) for rows in async_requests))

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
        return await asyncio.gather(
            submit_async(batcher, np.full((1, 2), -1.0, np.float32)),
            submit_async(batcher, np.ones((1, 2), np.float32)),
            return_exceptions=True,
        )

    bad, good = asyncio.run(main())
    assert isinstance(bad, ValueError)
    np.testing.assert_allclose(good[0], [[4.0]])


def test_async_full_queue_refuses_without_waiting():
    release = threading.Event()
    batcher = Batcher(
        lambda signature, inputs: (release.wait(5), [{"y": inputs["x"]}])[1],
        BatchingSpec(max_batch_size=1, batch_timeout_micros=0, max_enqueued=1),
    )

    async def main():
        first = asyncio.ensure_future(submit_async(batcher, np.ones((1, 1), np.float32)))  # runs, blocks the worker
        await asyncio.sleep(0.1)
        second = asyncio.ensure_future(submit_async(batcher, np.ones((1, 1), np.float32)))  # queued
        await asyncio.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(Overloaded):
            await submit_async(batcher, np.ones((1, 1), np.float32))
        refused_in = time.monotonic() - started
        release.set()
        await asyncio.gather(first, second)
        return refused_in

    assert asyncio.run(main()) < 0.05


async def submit_then_cancel(batcher):
    """A caller that goes away (its task cancelled) while its batch runs."""
    gone = asyncio.ensure_future(submit_async(batcher, np.ones((1, 2), np.float32)))
    await asyncio.sleep(0.05)
    gone.cancel()


def test_cancelled_async_caller_does_not_break_the_batcher():
    """A client that goes away mid-batch leaves the others and the worker unharmed."""
    model = Recorder(delay=0.2)
    batcher = Batcher(model, BatchingSpec(max_batch_size=4, batch_timeout_micros=0, max_enqueued=10))

    async def main():
        await submit_then_cancel(batcher)
        return await submit_async(batcher, np.full((1, 2), 2.0, np.float32))

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


# -- grouping: shapes, signatures, unbatched jobs -----------------------------------------------------


def test_rows_of_different_shapes_never_share_a_batch_and_each_gets_its_own():
    """Images at their own size: the batcher groups by row shape, keeping each group's order."""
    model = Recorder(delay=0.01)
    batcher = Batcher(model, BatchingSpec(max_batch_size=64, batch_timeout_micros=5000, max_enqueued=200))
    rng = np.random.default_rng(3)
    shapes = [(2, 2), (3, 5), (1, 7)]
    requests = [rng.random((int(rng.integers(1, 3)), *shapes[i % 3]), dtype=np.float32) for i in range(60)]
    results, errors = submit_all(batcher, requests)
    assert errors == [None] * 60
    assert_each_got_its_rows(requests, results)
    assert set(model.shapes) == set(shapes)  # every batch had one row shape (concatenation would fail otherwise)
    assert max(model.sizes) > 2, "requests of one shape should still have shared batches"


def test_a_later_request_of_the_same_shape_joins_ahead_of_another_shape():
    gate, running = threading.Event(), threading.Event()
    model = Recorder()

    def run(signature, inputs):
        running.set()
        gate.wait(5)
        return model(signature, inputs)

    batcher = Batcher(run, BatchingSpec(max_batch_size=8, batch_timeout_micros=0, max_enqueued=10))
    first = threading.Thread(target=submit, args=(batcher, np.ones((1, 2), np.float32)))
    first.start()
    assert running.wait(5)
    queued = [np.ones((1, 2), np.float32), np.ones((1, 3), np.float32), np.ones((1, 2), np.float32)]
    threads = [threading.Thread(target=submit, args=(batcher, rows)) for rows in queued]
    for t in threads:
        t.start()
        time.sleep(0.05)  # queue them in this order
    gate.set()
    for t in [first, *threads]:
        t.join(5)
    assert model.shapes == [(2,), (2,), (3,)] and model.sizes == [1, 2, 1]


def test_unbatched_jobs_always_run_alone():
    model = Recorder(delay=0.02)
    batcher = Batcher(model, BatchingSpec(max_batch_size=16, batch_timeout_micros=20_000, max_enqueued=100))
    results = [None] * 6

    def call(i):
        results[i] = submit(batcher, np.full((1, 2), float(i), np.float32), batched=False)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert model.sizes == [1] * 6
    assert [r[0].tolist() for r in results] == [[[4.0 * i]] for i in range(6)]


def test_the_callers_of_one_batch_on_one_loop_are_woken_by_one_call():
    """One call_soon_threadsafe per batch and loop, however many of its callers await there."""
    release = threading.Event()
    model = Recorder()
    batcher = Batcher(
        lambda signature, inputs: (release.wait(5), model(signature, inputs))[1],
        BatchingSpec(max_batch_size=8, batch_timeout_micros=0, max_enqueued=10),
    )
    wakes = []

    async def main():
        loop = asyncio.get_running_loop()
        threadsafe = loop.call_soon_threadsafe
        loop.call_soon_threadsafe = lambda *args: (wakes.append(args[0]), threadsafe(*args))[1]
        first = asyncio.ensure_future(submit_async(batcher, np.ones((1, 2), np.float32)))  # runs, holds the worker
        await asyncio.sleep(0.1)
        rest = [asyncio.ensure_future(submit_async(batcher, np.full((1, 2), v, np.float32))) for v in range(5)]
        await asyncio.sleep(0.05)
        release.set()
        return await first, await asyncio.gather(*rest)

    first, rest = asyncio.run(main())
    assert model.sizes == [1, 5]
    assert len(wakes) == 2  # one per batch
    assert [twice[0, 0] for twice, _ in rest] == [4.0 * v for v in range(5)] and first[0][0, 0] == 4.0


def _batch_of_two(batcher, first, second):
    """``first`` and ``second`` (one row each) through ``batcher`` as one batch: the model's answers, each's own."""
    results, errors = submit_all(batcher, [first, second])
    assert errors == [None, None]
    return results


class Echo:
    """A 'model' that answers with its input batch itself (as a model returning its input, or a view of it,
    may), recording where each batch lay in memory."""

    def __init__(self):
        self.addresses = []

    def __call__(self, signature, inputs):
        self.addresses.append(inputs["x"].ctypes.data)
        return [{"y": inputs["x"]}]


def test_batches_are_put_together_in_memory_kept_from_one_batch_to_the_next():
    model = Recorder()
    batcher = Batcher(model, BatchingSpec(max_batch_size=4, batch_timeout_micros=200_000))
    seen = []
    run = batcher._run
    batcher._run = lambda signature, inputs: (seen.append(inputs["x"].ctypes.data), run(signature, inputs))[1]
    rows = [np.full((1, 3), value, np.float32) for value in range(4)]
    for first, second in (rows[:2], rows[2:]):
        assert_each_got_its_rows([first, second], _batch_of_two(batcher, first, second))
    assert model.sizes == [2, 2] and seen[0] == seen[1]  # the second batch in the first one's memory


def test_answers_that_share_the_batch_memory_are_never_overwritten_by_the_next_batch():
    echo = Echo()
    batcher = Batcher(echo, BatchingSpec(max_batch_size=4, batch_timeout_micros=200_000))
    one, two = np.full((1, 3), 1.0, np.float32), np.full((1, 3), 2.0, np.float32)
    first = _batch_of_two(batcher, one, two)
    second = _batch_of_two(batcher, two * 10, one * 10)
    np.testing.assert_array_equal(first[0][0], one)  # still its own rows after the second batch ran
    np.testing.assert_array_equal(first[1][0], two)
    np.testing.assert_array_equal(second[0][0], two * 10)
    assert echo.addresses[0] != echo.addresses[1]  # the echoed batch's memory was not used again


def test_an_idle_batcher_gives_its_batch_memory_back(monkeypatch):
    monkeypatch.setattr(batching, "IDLE_SECONDS", 0.05)
    batcher = Batcher(Recorder(), BatchingSpec(max_batch_size=4, batch_timeout_micros=200_000))
    rows = [np.full((1, 3), value, np.float32) for value in range(2)]
    _batch_of_two(batcher, *rows)
    assert batcher._buffers  # held right after the batch
    deadline = time.monotonic() + 5
    while batcher._buffers and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not batcher._buffers
    assert_each_got_its_rows(rows, _batch_of_two(batcher, *rows))  # and a later batch takes new memory
