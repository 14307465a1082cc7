"""yyai.services.cpu: a trip of its own, or one trip shared by the calls of one pass of the event loop, and the
outcomes handed back to their loop together."""

import asyncio
import threading

import pytest

from yyai.services import cpu


@pytest.fixture
def trips(monkeypatch):
    """The trips sent to the pool from now on (each a list of calls)."""
    sent, pool = [], cpu.pool()

    class Counting:
        def send(self, loop, calls):
            sent.append(calls)
            pool.send(loop, calls)

    monkeypatch.setattr(cpu, "pool", Counting)
    return sent


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


def test_a_call_of_its_own_takes_a_trip_of_its_own(trips):
    async def main():
        return await asyncio.gather(cpu.run_cpu(len, "ab"), cpu.run_cpu(divmod, 7, 0), return_exceptions=True)

    two, error = asyncio.run(main())
    assert two == 2 and isinstance(error, ZeroDivisionError)
    assert [len(trip) for trip in trips] == [1, 1]


def test_the_outcomes_of_trips_that_end_while_the_loop_is_busy_come_back_in_one_callback():
    ended = threading.Semaphore(0)

    def work(value):
        ended.release()
        return value

    async def main():
        loop = asyncio.get_running_loop()
        callbacks, original = [], loop.call_soon_threadsafe
        loop.call_soon_threadsafe = lambda *args: (callbacks.append(args), original(*args))[1]
        futures = [cpu.run_cpu(work, value) for value in range(4)]
        for _ in futures:  # the loop is busy (blocked here) while every trip ends
            assert ended.acquire(timeout=5)
        results = await asyncio.gather(*futures)
        return results, len(callbacks)

    assert asyncio.run(main()) == ([0, 1, 2, 3], 1)


def test_a_closed_loop_loses_its_outcomes_and_the_pool_goes_on():
    closed = asyncio.new_event_loop()
    future = closed.create_future()
    closed.close()
    cpu.pool().send(closed, [(future, len, ("abc",))])  # nobody will take it

    async def main():
        return await asyncio.wait_for(cpu.run_cpu(len, "ab"), 5)

    assert asyncio.run(main()) == 2
    assert not future.done()
