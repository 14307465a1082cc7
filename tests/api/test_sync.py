"""The watcher: this process follows every app's target exactly, retries with backoff, keeps heartbeats."""

import time
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from tests import modelkit
from yyai.fleet import heartbeats, process_registry
from yyai.lifecycle.watcher import GenerationWatcher
from yyai.models import Heartbeat, ModelApp, ReloadEvent, ServingProcess
from yyai.runtime.snapshots import freeze

pytestmark = pytest.mark.django_db


def numbered(store, version, weight, ready=True):
    modelkit.regressor(store / "calc" / str(version) / "m.h5", weight=weight)
    if ready:
        (store / "calc" / str(version) / "READY").touch()


def announce(app, target, pinned=""):
    """What a reload in another process writes: a new generation and target."""
    row = ModelApp.objects.get(name=app)
    row.generation += 1
    row.target_version, row.pinned_version = target, pinned
    row.save()
    return row.generation


def other_process(app: ModelApp, **state) -> None:
    """Another serving process (host-b:4242) as its heartbeats write it, serving ``app`` in ``state``."""
    ServingProcess.objects.create(process="other", host="host-b", pid=4242, seen_at=timezone.now())
    Heartbeat.objects.create(process="other", host="host-b", pid=4242, app=app, seen_at=timezone.now(), **state)


def heartbeat(app="calc") -> Heartbeat:
    return Heartbeat.objects.get(app__name=app, process=heartbeats.beats().process)


def test_start_up_claims_a_target_and_joins_the_fleet(store):
    calc = ModelApp.objects.get(name="calc")
    current = process_registry.get_registry().get("calc").current
    assert calc.target_version == current.id and calc.generation == 0
    assert (store / "calc" / ".snapshots" / current.id).is_dir(), "the flat files were frozen"
    beat = heartbeat()
    assert (beat.version, beat.error, beat.pid) == (current.id, "", heartbeats.beats().pid)


def test_follows_the_target_exactly_whatever_the_folder_holds(store):
    registry = process_registry.get_registry()
    watcher = GenerationWatcher(registry, sync_seconds=1)
    modelkit.regressor(store / "calc" / "a.h5", weight=3.0)
    target = freeze(store / "calc").id  # what a reload elsewhere froze
    modelkit.regressor(store / "calc" / "a.h5", weight=7.0)  # the folder changed again since
    generation = announce("calc", target)
    assert watcher.tick() == ["calc"]
    assert registry.get("calc").current.id == target
    assert modelkit.predict(registry.get("calc"), np.ones((1, *modelkit.SHAPE), np.float32))[1][0].item() == 192.0
    assert (heartbeat().version, heartbeat().generation) == (target, generation)
    assert watcher.tick() == [], "a target served is not loaded again"
    event = ReloadEvent.objects.get()
    assert (event.trigger, event.status, event.to_version) == ("sync", "ok", target)


def test_a_pinned_numbered_target(store):
    registry = process_registry.get_registry()
    watcher = GenerationWatcher(registry, sync_seconds=1)
    numbered(store, 1, 1.0)
    numbered(store, 2, 2.0)
    announce("calc", "1", pinned="1")
    assert watcher.tick() == ["calc"]
    assert (registry.get("calc").current.id, registry.get("calc").pinned) == ("1", "1")


def test_a_target_that_cannot_load_keeps_serving_says_why_and_retries_with_backoff(store):
    registry = process_registry.get_registry()
    before = registry.get("calc").current.id
    watcher = GenerationWatcher(registry, sync_seconds=1)
    generation = announce("calc", "0123456789ab")  # a snapshot this host does not have
    assert watcher.tick() == [] and watcher.tick() == []  # the second tick is within the backoff
    assert registry.get("calc").current.id == before
    beat = heartbeat()
    assert beat.version == before and beat.generation == generation and "0123456789ab" in beat.error
    assert "is not on disk" in beat.error
    assert list(ReloadEvent.objects.values_list("status", flat=True)) == ["failed"], "recorded once"
    next_attempt, backoff = watcher._retry["calc"]
    assert backoff == 1.0 and next_attempt > time.monotonic()
    watcher._retry["calc"] = (0.0, backoff)  # the backoff passed
    assert watcher.tick() == [] and watcher._retry["calc"][1] == 2.0, "the next wait doubles"
    modelkit.regressor(store / "calc" / "a.h5", weight=3.0)
    announce("calc", freeze(store / "calc").id)
    assert watcher.tick() == ["calc"] and heartbeat().error == "", "a new target is tried at once"


def test_own_reload_is_not_repeated_and_waits_for_the_fleet(store, staff_client):
    watcher = process_registry._watcher
    assert watcher is not None and watcher._thread is None  # tests drive tick() themselves
    modelkit.regressor(store / "calc" / "a.h5", weight=5.0)
    response = staff_client.post("/api/apps/calc/reload/")
    assert response.status_code == 200, response.content
    body = response.json()
    calc = ModelApp.objects.get(name="calc")
    assert (calc.generation, calc.target_version) == (1, body["new_version"])
    assert body["converged"] and [p["version"] for p in body["processes"]] == [body["new_version"]]
    assert watcher.applied("calc") == 1 and watcher.tick() == []


def test_a_lagging_process_makes_the_reload_answer_202_with_it(store, staff_client, settings, yyai):
    yyai.RELOAD_WAIT_SECONDS = 0.3
    calc = ModelApp.objects.get(name="calc")
    other_process(calc, version="old", generation=0)
    modelkit.regressor(store / "calc" / "a.h5", weight=5.0)
    started = time.monotonic()
    response = staff_client.post("/api/apps/calc/reload/")
    assert response.status_code == 202 and 0.3 <= time.monotonic() - started < 5
    lagging = response.json()["lagging"]
    assert [(p["host"], p["pid"], p["version"]) for p in lagging] == [("host-b", 4242, "old")]
    detail = staff_client.get("/api/apps/calc/").json()
    assert detail["degraded"] and {p["host"] for p in detail["processes"]} == {"host-b", heartbeats.HOST}
    ServingProcess.objects.filter(process="other").update(seen_at=timezone.now() - timedelta(minutes=5))
    assert not staff_client.get("/api/apps/calc/").json()["degraded"], "a silent process is not live"


def test_a_process_that_failed_ends_the_wait_early_with_its_error(store, staff_client, settings, yyai):
    yyai.RELOAD_WAIT_SECONDS = 30
    calc = ModelApp.objects.get(name="calc")
    other_process(calc, version="old", generation=1, error="disk full")
    modelkit.regressor(store / "calc" / "a.h5", weight=5.0)
    started = time.monotonic()
    response = staff_client.post("/api/apps/calc/reload/")
    assert response.status_code == 202 and time.monotonic() - started < 5
    assert response.json()["lagging"][0]["error"] == "disk full"


def test_poll_picks_up_a_copied_version_and_makes_it_the_target(store):
    registry = process_registry.get_registry()
    watcher = GenerationWatcher(registry, sync_seconds=1, poll_seconds=0.01)
    numbered(store, 1, 1.0)
    assert watcher.tick() == ["calc"] and registry.get("calc").current.id == "1"
    assert ModelApp.objects.get(name="calc").target_version == "1"
    numbered(store, 2, 2.0, ready=False)  # still being copied: not complete, not picked up
    registry.get("calc").settle_seconds = 60
    watcher._next_poll = 0
    assert watcher.tick() == []
    (store / "calc" / "2" / "READY").touch()
    watcher._next_poll = 0
    assert watcher.tick() == ["calc"] and registry.get("calc").current.id == "2"
    assert ReloadEvent.objects.filter(trigger="poll", status="ok").count() == 2


def test_poll_off_by_default(store):
    watcher = GenerationWatcher(process_registry.get_registry(), sync_seconds=1)
    numbered(store, 1, 1.0)
    assert watcher.tick() == []


def test_an_app_whose_first_load_failed_is_retried_until_it_serves_and_claims_its_target(store):
    """As after a start-up that could not load calc (its only files corrupt, or the repository away): no
    target, nothing served. The watcher retries with backoff, without a history row per attempt."""
    registry = process_registry.get_registry()
    registry.get("calc").unload()
    ModelApp.objects.filter(name="calc").update(target_version="")
    good = (store / "calc" / "a.h5").read_bytes()
    modelkit.random_bytes(store / "calc" / "a.h5")
    watcher = GenerationWatcher(registry, sync_seconds=1)
    assert watcher.tick() == [] and registry.get("calc").current is None
    assert watcher._retry["calc"][1] == 1.0 and watcher.tick() == [], "the second tick is within the backoff"
    (store / "calc" / "a.h5").write_bytes(good)
    watcher._retry["calc"] = (0.0, 1.0)  # the backoff passed
    assert watcher.tick() == ["calc"]
    served = registry.get("calc").current.id
    assert ModelApp.objects.get(name="calc").target_version == served
    assert watcher.tick() == [] and heartbeat().version == served
    assert not ReloadEvent.objects.filter(status="failed").exists()
