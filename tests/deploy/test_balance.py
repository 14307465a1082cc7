"""The workers' shared connection table (aiserver/balance.py), with real forked processes."""

import multiprocessing
import os

import pytest

from aiserver import balance

fork = multiprocessing.get_context("fork")


@pytest.fixture
def table():
    balance.prepare()
    yield
    balance._table = None
    balance._leaving = 0


def _worker(connections: int, ready, finish) -> None:
    balance.join()
    balance.count(connections)
    ready.set()
    finish.wait(30)


def workers(*connections: int):
    """Forked workers that join the table and hold ``connections`` each until told to finish."""
    finish = fork.Event()
    started = []
    for count in connections:
        ready = fork.Event()
        process = fork.Process(target=_worker, args=(count, ready, finish))
        process.start()
        assert ready.wait(30)
        started.append(process)
    return started, finish


def stop(started, finish) -> None:
    finish.set()
    for process in started:
        process.join(30)


def test_a_process_outside_gunicorn_is_never_crowded():
    assert balance._table is None
    balance.count(500)
    assert not balance.crowded(500)


def test_a_single_worker_is_never_crowded(table):
    balance.join()
    balance.count(100)
    assert not balance.crowded(100)


def test_a_worker_above_its_share_plus_slack_is_crowded(table):
    started, finish = workers(4)  # the other worker holds 4
    try:
        balance.join()
        for mine, expected in ((4, False), (8, False), (9, True), (40, True)):
            balance.count(mine)
            assert balance.crowded(mine) is expected, mine
    finally:
        stop(started, finish)


def test_connections_told_to_close_count_as_gone_at_once(table):
    started, finish = workers(10)
    try:
        balance.join()
        balance.count(20)
        assert balance.crowded(20)
        for _ in range(6):
            balance.leaving(20, 1)  # six told to close; their clients have not gone yet
        assert not balance.crowded(20)  # 14 against 10: within the share (12) plus SLACK
        assert balance._table.connections[balance._table.slot] == 14
        balance.leaving(19, -1)  # one of them has gone
        assert balance._table.connections[balance._table.slot] == 14
    finally:
        stop(started, finish)


def test_a_dead_workers_slot_is_freed_and_taken_again(table):
    started, finish = workers(50, 50)
    stop(started, finish)
    balance.forget(started[0].pid)  # the master saw it exit: its connections leave the sums
    pids = list(balance._table.pids[: balance._table.used.value])
    assert started[0].pid not in pids
    balance.join()  # the other's slot was not forgotten, but its process is gone: either slot may be taken
    assert balance._table.pids[balance._table.slot] == os.getpid()
    assert balance._table.slot in (0, 1) and balance._table.used.value == 2
    balance.count(3)
    assert not balance.crowded(3)
