"""Old versions are freed after a reload, even with start-up objects frozen as gunicorn does."""

import gc
import time
import weakref

import pytest

from yyai.fleet import process_registry
from yyai.runtime import process_memory
from yyai.runtime.process_memory import release_when_idle

pytestmark = pytest.mark.django_db


@pytest.fixture
def frozen():
    process_memory.freeze()
    yield
    gc.unfreeze()


def wait_dead(ref, seconds=20.0) -> bool:
    deadline = time.monotonic() + seconds
    while ref() is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    return ref() is None


def test_reload_frees_the_frozen_old_version(store, staff_client, frozen):
    old = weakref.ref(process_registry.get_registry().get("calc").current)
    assert staff_client.post("/api/apps/calc/reload/").status_code == 200
    assert wait_dead(old), "the retired version stayed in memory"
    deadline = time.monotonic() + 10
    while gc.get_freeze_count() == 0 and time.monotonic() < deadline:  # the release thread re-freezes last
        time.sleep(0.05)
    assert gc.get_freeze_count() > 0, "long-lived objects are frozen again afterwards"


def test_without_release_a_frozen_version_would_leak(store, frozen):
    """The control: a frozen, cyclic old version outlives a swap unless released."""
    util = process_registry.get_registry().get("calc")
    old = weakref.ref(util.current)
    util.reload()
    assert not wait_dead(old, seconds=1.0)


def test_nothing_to_do_when_nothing_is_frozen(store):
    gc.unfreeze()
    assert release_when_idle(process_registry.get_registry().get("calc").current) is None


def test_a_version_loaded_after_the_freeze_is_freed_without_unfreezing(store, frozen, monkeypatch):
    """Under a memory budget apps load and unload all day: their versions are not frozen, and freeing one must
    not cost the full collection that unfreezing every start-up object does."""
    util = process_registry.get_registry().get("calc")
    util.reload()  # a version loaded after the freeze
    young = weakref.ref(util.current)
    unfrozen = []
    monkeypatch.setattr(gc, "unfreeze", lambda: unfrozen.append(1))
    util.reload()
    thread = release_when_idle(young())
    thread.join(timeout=20)
    assert wait_dead(young) and not unfrozen, "freed by a collection of what is not frozen"
