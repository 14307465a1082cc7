"""The model repository's ground truth, in one process: gone apps removed, new apps awaited on every live
process, a restored folder served at start-up (its old id when the files are the same, else a new generation)."""

import base64
import shutil

import pytest
from django.utils import timezone

from tests import modelkit
from yyai.fleet import process_registry
from yyai.lifecycle import startup
from yyai.models import ModelApp, ReloadEvent, ServingProcess

pytestmark = pytest.mark.django_db

IMAGE = {"image": base64.b64encode(modelkit.png_bytes(255)).decode()}


def restart():
    """This process stops and starts again on the same database (as a worker gunicorn restarts)."""
    process_registry.reset()
    startup.start()


def test_a_reload_of_a_gone_app_removes_it_from_every_list(store, client, staff_client, admin_client, tmp_path):
    backup = shutil.copytree(store / "cls", tmp_path / "cls-backup")
    served = ModelApp.objects.get(name="cls").target_version
    shutil.rmtree(store / "cls")
    assert client.get("/api/apps/cls/").status_code == 200, "until the reload, the app still serves"
    response = staff_client.post("/api/apps/cls/reload/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["removed"] and body["converged"] and body["new_version"] is None and body["old_version"] == served
    assert "gone from the repository" in body["message"]
    assert [a["name"] for a in client.get("/api/apps/").json()["results"]] == ["calc"]
    assert client.get("/api/apps/cls/").status_code == 404
    assert client.post("/api/apps/cls/predict/", IMAGE, format="json").status_code == 404
    assert "cls" not in admin_client.get("/admin/yyai/modelapp/").content.decode()
    assert b'"cls"' not in client.get("/").content
    event = ReloadEvent.objects.filter(app__name="cls").latest("created_at")
    assert (event.from_version, event.to_version, event.status) == (served, "", "ok") and "removed" in event.note
    assert staff_client.post("/api/apps/cls/reload/").status_code == 404, "a second reload finds no app"

    shutil.copytree(backup, store / "cls")  # brought back: a reload revives it
    response = staff_client.post("/api/apps/cls/reload/")
    assert response.status_code == 200 and response.json()["new_version"] == served
    assert ModelApp.objects.get(name="cls").removed_at is None
    assert [a["name"] for a in client.get("/api/apps/").json()["results"]] == ["calc", "cls"]


def test_a_new_app_waits_for_every_live_process_even_one_that_never_loaded_it(store, staff_client, yyai):
    yyai.RELOAD_WAIT_SECONDS = 0.3
    ServingProcess.objects.create(process="other", host="host-b", pid=4242, seen_at=timezone.now())
    modelkit.regressor(store / "late" / "m.h5", weight=3.0)
    response = staff_client.post("/api/apps/late/reload/")
    assert response.status_code == 202, response.content
    assert [(p["host"], p["version"]) for p in response.json()["lagging"]] == [("host-b", "")]


def test_start_up_serves_a_restored_folder_on_its_old_id_without_a_new_generation(store, tmp_path):
    before = ModelApp.objects.get(name="calc")
    backup = shutil.copytree(store / "calc", tmp_path / "calc-backup", ignore=shutil.ignore_patterns(".snapshots"))
    shutil.rmtree(store / "calc")
    shutil.copytree(backup, store / "calc")
    restart()
    after = ModelApp.objects.get(name="calc")
    assert process_registry.get_registry().get("calc").current.id == before.target_version
    assert (after.generation, after.target_version) == (before.generation, before.target_version)
    assert not ReloadEvent.objects.filter(trigger="startup").exists()


def test_start_up_serves_what_the_folder_holds_when_its_target_is_gone_everywhere(store, client, caplog):
    before = ModelApp.objects.get(name="calc")
    shutil.rmtree(store / "calc")
    modelkit.regressor(store / "calc" / "m.h5", weight=5.0)  # other files than the target's
    restart()
    after = ModelApp.objects.get(name="calc")
    serving = process_registry.get_registry().get("calc").current.id
    assert serving != before.target_version
    assert (after.generation, after.target_version) == (before.generation + 1, serving)
    event = ReloadEvent.objects.get(trigger="startup")
    assert (event.from_version, event.to_version) == (before.target_version, serving)
    assert before.target_version in event.note and "gone from the repository" in event.note
    assert any(r.levelname == "WARNING" and "what the repository holds now" in r.getMessage() for r in caplog.records)
    body = client.post("/api/apps/calc/predict/", {"instances": [[[[1.0]] * 8] * 8]}, format="json").json()
    assert body["version"] == serving and body["predictions"][0][0]["value"] == pytest.approx(5.0 * 64)
