"""yyai.services.reloads without HTTP: rows, generations, events and the one version everywhere."""

import pytest

from tests import modelkit
from yyai.fleet.process_registry import get_registry
from yyai.models import ModelApp, ReloadEvent
from yyai.runtime.errors import ModelLoadError
from yyai.services import records, reloads

pytestmark = pytest.mark.django_db


def test_a_reload_to_new_weights_moves_the_target_and_records_it(store, staff):
    before = get_registry().get("calc").current.id
    modelkit.regressor(store / "calc" / "a.h5", weight=3.0)
    outcome = reloads.reload_app(app="calc", user=staff, wait_fleet=False)
    row = ModelApp.objects.get(name="calc")
    assert outcome.report.old_version == before and outcome.report.new_version != before
    assert row.target_version == outcome.report.new_version and row.generation == outcome.generation == 1
    event = ReloadEvent.objects.get()
    assert (event.status, event.user, event.to_version) == ("ok", staff, outcome.report.new_version)


def test_a_reload_of_the_same_files_changes_no_generation(store):
    reloads.reload_app(app="calc", wait_fleet=False)  # the first sets the target
    assert reloads.reload_app(app="calc", wait_fleet=False).generation == ModelApp.objects.get(name="calc").generation


def test_a_failed_reload_is_recorded_and_changes_nothing(store):
    serving = get_registry().get("calc").current.id
    modelkit.random_bytes(store / "calc" / "a.h5")
    with pytest.raises(ModelLoadError):
        reloads.reload_app(app="calc", wait_fleet=False)
    assert get_registry().get("calc").current.id == serving
    assert ModelApp.objects.filter(name="calc", generation=0).exists()
    assert ReloadEvent.objects.get().status == "failed"


def test_sync_apps_creates_only_the_missing_rows():
    ModelApp.objects.create(name="old", generation=7)
    records.sync_apps(names=["old", "new"])
    rows = ModelApp.objects.filter(name__in=["old", "new"])  # other modules' module-scoped stores leave rows
    assert dict(rows.values_list("name", "generation")) == {"old": 7, "new": 0}
    assert records.ensure_app(name="new") == ModelApp.objects.get(name="new")
