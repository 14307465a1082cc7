"""yyai.selectors: what the API, admin and page show, and what is hidden from whom."""

import pytest

from yyai import selectors
from yyai.fleet import heartbeats
from yyai.fleet.process_registry import get_registry
from yyai.models import ModelApp
from yyai.runtime.errors import ModelLoadError

pytestmark = pytest.mark.django_db


def test_app_status_joins_runtime_target_and_processes(store):
    calc = selectors.app_queryset().get(name="calc")
    status = selectors.app_status(app=calc)
    assert status["state"] == "AVAILABLE" and status["generation"] == 0
    assert status["target_version"] == status["version"]  # start-up made what it loaded the target
    assert [p["version"] for p in status["processes"]] == [status["version"]] and status["degraded"] is False


def test_load_errors_are_hidden_from_anyone_but_staff(store):
    (store / "calc" / "a.h5").write_bytes(b"not a model")
    with pytest.raises(ModelLoadError):
        get_registry().get("calc").reload()
    calc = ModelApp.objects.get(name="calc")
    assert "a.h5" in selectors.app_status(app=calc)["last_error"]
    assert selectors.app_status(app=calc, staff=False)["last_error"] == selectors.HIDDEN


def test_names_in_state(store):
    assert selectors.names_in_state(state="available") == ["calc", "cls"]
    assert selectors.names_in_state(state="failed") == []


def test_processes_come_from_the_heartbeats(store):
    beats = heartbeats.Beats()
    beats.set("calc", version="v1", generation=0, error="")
    beats.write(force=True)
    processes = selectors.app_status(app=ModelApp.objects.get(name="calc"))["processes"]
    assert any(p["version"] == "v1" for p in processes)
