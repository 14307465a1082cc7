"""The generation watcher: raised generations and (optionally) new folders on disk are applied here."""
import pytest

from tests import modelkit
from yyai import serving
from yyai.models import ModelApp, ReloadEvent
from yyai.sync import GenerationWatcher

pytestmark = pytest.mark.django_db


def numbered(store, version, weight, ready=True):
    modelkit.regressor(store / "calc" / str(version) / "m.h5", weight=weight)
    if ready:
        (store / "calc" / str(version) / "READY").touch()


def test_raised_generation_reloads_with_the_pin(store):
    registry = serving.get_registry()
    watcher = GenerationWatcher(registry, sync_seconds=1)
    numbered(store, 1, 1.0)
    numbered(store, 2, 2.0)
    assert watcher.tick() == []  # no row, no generation: nothing to do
    ModelApp.objects.create(name="calc", generation=3, pinned_version="1")
    assert watcher.tick() == ["calc"]
    assert registry.get("calc").current.id == "1" and registry.get("calc").pinned == "1"
    assert watcher.tick() == [], "an applied generation is not applied again"
    event = ReloadEvent.objects.get()
    assert (event.trigger, event.status, event.to_version) == ("sync", "ok", "1")


def test_failed_sync_is_recorded_once_and_keeps_serving(store):
    registry = serving.get_registry()
    before = registry.get("calc").current.id
    watcher = GenerationWatcher(registry, sync_seconds=1)
    modelkit.random_bytes(store / "calc" / "a.h5")
    ModelApp.objects.create(name="calc", generation=1)
    assert watcher.tick() == [] and watcher.tick() == []
    assert registry.get("calc").current.id == before
    assert list(ReloadEvent.objects.values_list("status", flat=True)) == ["failed"]


def test_own_reload_is_not_repeated(store, staff_client):
    watcher = serving._watcher
    assert watcher is not None and watcher._thread is None  # tests drive tick() themselves
    assert staff_client.post("/api/apps/calc/reload/").status_code == 200
    assert watcher.applied("calc") == ModelApp.objects.get(name="calc").generation == 1
    assert watcher.tick() == []


def test_poll_picks_up_a_copied_version(store):
    registry = serving.get_registry()
    watcher = GenerationWatcher(registry, sync_seconds=1, poll_seconds=0.01)
    numbered(store, 1, 1.0)
    assert watcher.tick() == ["calc"] and registry.get("calc").current.id == "1"
    numbered(store, 2, 2.0, ready=False)  # still being copied: not complete, not picked up
    registry.get("calc").settle_seconds = 60
    watcher._next_poll = 0
    assert watcher.tick() == []
    (store / "calc" / "2" / "READY").touch()
    watcher._next_poll = 0
    assert watcher.tick() == ["calc"] and registry.get("calc").current.id == "2"
    assert ReloadEvent.objects.filter(trigger="poll", status="ok").count() == 2


def test_poll_off_by_default(store):
    watcher = GenerationWatcher(serving.get_registry(), sync_seconds=1)
    numbered(store, 1, 1.0)
    assert watcher.tick() == []
