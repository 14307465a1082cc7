"""yyai.services.cpu: a trip of its own, or one trip shared by the calls of one pass of the event loop."""

import asyncio
import threading

import pytest

from yyai.services import cpu


@pytest.fixture
def trips(monkeypatch):
    """The pool tasks submitted from now on (each a trip)."""
    submitted, pool = [], cpu.pool()

    class Counting:
        def submit(self, function, *args):
            submitted.append(args)
            return pool.submit(function, *args)

    monkeypatch.setattr(cpu, "pool", Counting)
    return submitted


def test_the_calls_of_one_pass_share_one_trip_and_each_gets_its_own_outcome(trips):
    threads = []

    def work(value):
        threads.append(threading.current_thread().name)
        if value == "bad":
            raise ValueError("bad input")
        return value * 2

    async def main():
        return await asyncio.gather(*(cpu.run_shared(work, v) for v in (1, "bad", 3)), return_exceptions=True)

    one, bad, three = asyncio.run(main())
    assert (one, three) == (2, 6) and isinstance(bad, ValueError) and str(bad) == "bad input"
    assert len(trips) == 1 and len(set(threads)) == 1 and threads[0].startswith("cpu")


def test_calls_of_later_passes_take_later_trips(trips):
    async def main():
        first = await cpu.run_shared(len, "ab")
        second = await cpu.run_shared(len, "abc")
        return first, second

    assert asyncio.run(main()) == (2, 3)
    assert len(trips) == 2
    assert not cpu._gathering  # nothing left waiting once a trip has gone


def test_a_cancelled_caller_is_skipped_and_the_others_answered(trips):
    started, release = threading.Event(), threading.Event()

    def slow(value):
        started.set()
        release.wait(5)
        return value

    async def main():
        gone, kept = cpu.run_shared(slow, "gone"), cpu.run_shared(slow, "kept")
        await asyncio.sleep(0)  # the trip leaves
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
        gone.cancel()
        release.set()
        return await kept, gone.cancelled()

    assert asyncio.run(main()) == ("kept", True)


def test_a_pool_that_has_shut_down_fails_every_caller_of_the_trip(monkeypatch):
    class ShutDown:
        def submit(self, function, *args):
            raise RuntimeError("cannot schedule new futures after shutdown")

    monkeypatch.setattr(cpu, "pool", ShutDown)

    async def main():
        return await asyncio.gather(cpu.run_shared(len, "a"), cpu.run_shared(len, "b"), return_exceptions=True)

    assert [type(outcome) for outcome in asyncio.run(main())] == [RuntimeError, RuntimeError]
