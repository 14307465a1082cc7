"""The dynamic batcher: exact rows per caller, timeout, queue limit, failures."""
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
