"""The memory budget: start-up fills it, the least recently used idle apps make room, standby apps load on demand.

The eviction tests fix each model's measure to its file's size (the resident set
is made constant), so that what fits is exact; one test measures a real load.
"""

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tests import modelkit
from yyai.runtime import loader
from yyai.runtime.budget import AppOnStandby, NoRoom
from yyai.runtime.errors import AppNotAvailable
from yyai.runtime.registry import Registry, RegistryConfig

BATCH = np.ones((1, *modelkit.SHAPE), dtype="float32")  # a regressor answers weight * 64


@pytest.fixture
def exact_sizes(monkeypatch):
    """Each model measures exactly its file's size."""
    monkeypatch.setattr(loader, "resident_bytes", lambda: 0)


@pytest.fixture
def size(tmp_path) -> int:
    """The file size of one of the apps' models (they differ only in their weights' values)."""
    return loader.model_size(modelkit.regressor(tmp_path / "probe.h5", weight=1.0))


def store(make_app, names, manifests=None):
    for i, name in enumerate(names):
        make_app(name, {"m.h5": float(i + 1)}, (manifests or {}).get(name))


def registry_for(tmp_path, *, fits: float, size: int, wait: float = 5.0) -> Registry:
    return Registry(RegistryConfig(store=tmp_path / "store", memory_budget=int(size * fits), load_wait_seconds=wait))


def answer(util) -> float:
    version, (output,) = modelkit.predict(util, BATCH)
    return float(output[0][0])


def test_start_up_fills_the_budget_pinned_and_priority_first(make_app, tmp_path, exact_sizes, size):
    store(make_app, ["a", "b", "c", "d"], {"d": "[memory]\npinned = true\n", "c": "[memory]\npriority = 5\n"})
    registry = registry_for(tmp_path, fits=2.5, size=size)
    results = registry.load_all()
    states = {u.name: u.state.value for u in registry.all()}
    assert states == {"a": "STANDBY", "b": "STANDBY", "c": "AVAILABLE", "d": "AVAILABLE"}
    assert results["a"].standby and results["a"].error is None
    assert registry.budget.used() == 2 * size
    standby = registry.get("a").status()
    assert standby["version"] and standby["memory"] == {"bytes": 0, "resident": False, "pinned": False, "priority": 0}
    assert [v["state"] for v in standby["versions"]] == ["STANDBY"]


def test_a_standby_app_loads_on_its_request_and_the_least_recent_idle_app_makes_room(
    make_app, tmp_path, exact_sizes, size
):
    store(make_app, ["a", "b", "c"], {"c": "[memory]\npinned = true\n"})
    registry = registry_for(tmp_path, fits=2.5, size=size)
    registry.load_all()  # c (pinned), then a; b waits
    assert registry.get("b").state.value == "STANDBY"
    assert answer(registry.get("b")) == 2.0 * 64
    assert registry.get("a").state.value == "STANDBY", "a, idle and not pinned, made room"
    assert registry.get("c").state.value == "AVAILABLE", "a pinned app is never unloaded"
    assert answer(registry.get("a")) == 1.0 * 64
    assert registry.get("b").state.value == "STANDBY"
    counts = registry.budget.counts
    assert (counts["a"].evictions, counts["a"].demand_loads) == (1, 1)
    assert (counts["b"].evictions, counts["b"].demand_loads) == (1, 1)
    assert registry.budget.used() <= registry.budget.limit


def test_an_app_with_requests_in_flight_is_never_unloaded(make_app, tmp_path, exact_sizes, size):
    store(make_app, ["a", "b"])
    registry = registry_for(tmp_path, fits=1.5, size=size, wait=0.5)
    registry.load_all()
    a, b = registry.get("a"), registry.get("b")
    with a.serving():  # a request holds a
        started = time.monotonic()
        with pytest.raises(NoRoom) as refused:
            answer(b)
        assert time.monotonic() - started >= 0.25, "it waited for a to go idle first (half the wait)"
        assert "in use" in refused.value.message and refused.value.retry_after >= 1
        assert a.state.value == "AVAILABLE"
    registry.budget.wait_seconds = 30.0  # the load itself may take longer than the short wait (a slow machine)
    assert answer(b) == 2.0 * 64, "once a is idle, it makes room"
    assert a.state.value == "STANDBY"


def test_an_unloaded_app_comes_back_on_the_version_it_served(make_app, tmp_path, exact_sizes, size):
    store(make_app, ["a", "b"])
    registry = registry_for(tmp_path, fits=1.5, size=size)
    registry.load_all()
    a = registry.get("a")
    served = a.current.id
    modelkit.regressor(tmp_path / "store" / "a" / "m.h5", weight=9.0)  # new weights, not reloaded
    answer(registry.get("b"))
    assert a.state.value == "STANDBY" and a.version_id == served
    assert answer(a) == 1.0 * 64 and a.current.id == served, "never another version because it was unloaded"


def test_a_standby_app_follows_a_new_target_without_loading(make_app, tmp_path, exact_sizes, size):
    store(make_app, ["a", "b"])
    registry = registry_for(tmp_path, fits=1.5, size=size)
    registry.load_all()
    b = registry.get("b")
    old = b.version_id
    modelkit.regressor(tmp_path / "store" / "b" / "m.h5", weight=7.0)
    new = b.source.freeze().id  # the snapshot another process made the target
    assert new != old
    assert b.stand_by(new, pinned=None)
    assert b.current is None and b.version_id == new
    assert answer(b) == 7.0 * 64 and b.current.id == new


def test_requests_across_more_apps_than_fit_all_answer(make_app, tmp_path, exact_sizes, size):
    names = ["a", "b", "c", "d", "e"]
    store(make_app, names)
    registry = registry_for(tmp_path, fits=2.5, size=size, wait=30.0)
    registry.load_all()
    rng = np.random.default_rng(0)
    picks = rng.choice(len(names), size=120)

    def call(i: int) -> tuple[int, float]:
        return i, answer(registry.get(names[i]))

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(call, picks))
    assert all(value == (i + 1) * 64.0 for i, value in answers), "every request answered by its own app"
    counts = registry.budget.counts
    assert sum(c.evictions for c in counts.values()) > 0 and sum(c.demand_loads for c in counts.values()) > 0
    resident = [u for u in registry.all() if u.current is not None]
    assert len(resident) <= 2 and registry.budget.used() <= registry.budget.limit


def test_an_app_larger_than_the_budget_says_so(make_app, tmp_path, exact_sizes, size):
    store(make_app, ["a"])
    registry = registry_for(tmp_path, fits=0.5, size=size)
    registry.load_all()
    with pytest.raises(NoRoom) as refused:
        answer(registry.get("a"))
    assert "YYAI_MEMORY_BUDGET" in refused.value.message


def test_a_load_on_demand_that_fails_is_not_retried_at_once(make_app, tmp_path, exact_sizes, size):
    store(make_app, ["a", "b"])
    registry = registry_for(tmp_path, fits=1.5, size=size)
    registry.load_all()
    b = registry.get("b")
    snapshot = b.source.fetch(b.version_id)
    modelkit.random_bytes(Path(snapshot.files[0]))
    with pytest.raises(AppNotAvailable) as first:
        answer(b)
    assert "could not be loaded on demand" in first.value.message
    started = time.monotonic()
    with pytest.raises(AppNotAvailable):
        answer(b)
    assert time.monotonic() - started < 0.5, "the second request is refused without a second load"
    assert registry.get("a").state.value == "AVAILABLE"


def test_on_an_event_loop_the_load_starts_and_the_caller_is_told_at_once(make_app, tmp_path, exact_sizes, size):
    store(make_app, ["a", "b"])
    registry = registry_for(tmp_path, fits=1.5, size=size)
    registry.load_all()
    b = registry.get("b")

    async def on_loop():
        with b.serving():
            pass

    with pytest.raises(AppOnStandby):
        asyncio.run(on_loop())
    deadline = time.monotonic() + 30
    while b.current is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b.state.value == "AVAILABLE", "the load went on without the loop"


def test_a_real_load_measures_at_least_its_weights(tmp_path):
    app = tmp_path / "store" / "big"
    app.mkdir(parents=True)
    modelkit.regressor(app / "m.h5", weight=1.0, input_shape=(512, 512, 4))  # 1 M weights: 4 MiB
    registry = Registry(RegistryConfig(store=tmp_path / "store"))
    registry.load_all()
    util = registry.get("big")
    (model,) = util.status()["models"]
    assert model["memory_bytes"] >= 4 * 2**20
    assert util.status()["memory"]["bytes"] == model["memory_bytes"] and util.status()["memory"]["resident"]
    assert registry.budget.limit is None, "no budget by default"


def test_unload_of_a_gone_app_frees_its_room(make_app, tmp_path, exact_sizes, size):
    store(make_app, ["a"])
    registry = registry_for(tmp_path, fits=1.5, size=size)
    registry.load_all()
    assert registry.budget.used() == size
    threading.Thread(target=registry.forget, args=("a",)).start()
    deadline = time.monotonic() + 5
    while registry.budget.used() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert registry.budget.used() == 0
