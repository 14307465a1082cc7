"""Version labels and canary traffic: several versions served at once, routed by version, label and share.

App ``num`` (numbered) has versions 1 (answers 64) and 2 (answers 128); version 1 is the target.
"""

import numpy as np
import pytest

from tests import modelkit
from tests.compat.conftest import write_version
from yyai import services
from yyai.fleet import heartbeats, process_registry
from yyai.lifecycle.watcher import GenerationWatcher
from yyai.models import Heartbeat, ModelApp, ReloadEvent

pytestmark = pytest.mark.django_db
TENSOR = {"instances": np.ones((1, *modelkit.SHAPE)).tolist()}
ANSWER = {"1": 64.0, "2": 128.0}


@pytest.fixture
def num(store):
    write_version(store, 1, 1.0)
    write_version(store, 2, 2.0)
    services.reload_app(app="num", version=1)
    return store


def predict(client, query: str = "", headers: dict | None = None) -> dict:
    response = client.post(f"/api/apps/num/predict/{query}", TENSOR, format="json", headers=headers or {})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["predictions"][0][0]["value"] == ANSWER[body["version"]], "each version answers its own weights"
    return body


def label(staff_client, **body):
    return staff_client.post("/api/apps/num/labels/", body, format="json")


def test_labelled_versions_serve_beside_the_target_by_label_and_by_version(num, staff_client, client):
    response = label(staff_client, labels={"stable": "1", "canary": "2"})
    assert response.status_code == 200 and response.json()["converged"], response.content
    assert response.json()["labels"] == {"stable": "1", "canary": "2"}
    assert response.json()["processes"][0]["also"] == ["2"]
    assert predict(client)["version"] == "1", "no canary share: every request naming none gets the target"
    assert predict(client, "?label=canary")["version"] == "2"
    assert predict(client, "?label=stable")["version"] == "1"
    assert predict(client, "?version=2")["version"] == "2"
    missing = client.post("/api/apps/num/predict/?label=beta", TENSOR, format="json")
    assert missing.status_code == 404 and "beta" in missing.json()["error"] and "canary" in missing.json()["error"]
    detail = client.get("/api/apps/num/").json()
    assert detail["routes"]["labels"] == {"stable": "1", "canary": "2"} and detail["routes"]["serving"] == ["2"]
    metrics = client.get("/metrics").content.decode()
    assert 'yyai_model_rows_total{app="num",model="m.h5",version="2"}' in metrics, "metrics carry the version"
    event = ReloadEvent.objects.filter(app__name="num").first()
    assert event.note.startswith("routes: canary=2, stable=1")


def test_a_canary_share_splits_the_requests_that_name_no_version(num, staff_client, client):
    assert label(staff_client, labels={"canary": "2"}, canary_percent=25).status_code == 200
    versions = [predict(client)["version"] for _ in range(800)]
    share = versions.count("2") / len(versions)
    assert 0.20 <= share <= 0.30, f"canary share {share:.3f} for 25% (3 sigma: +-4.6%)"


def test_a_sticky_header_keeps_each_caller_on_one_side(num, staff_client, client):
    assert label(staff_client, labels={"canary": "2"}, canary_percent=30, canary_header="X-User").status_code == 200
    sides = {}
    for user in range(200):
        seen = {predict(client, headers={"X-User": f"user-{user}"})["version"] for _ in range(3)}
        assert len(seen) == 1, f"user-{user} moved between versions"
        sides[user] = seen.pop()
    share = list(sides.values()).count("2") / len(sides)
    assert 0.20 <= share <= 0.40, f"{share:.2f} of the users on the canary for 30%"


def test_promote_makes_the_canary_the_target_and_rollback_ends_it(num, staff_client, client):
    label(staff_client, labels={"stable": "1", "canary": "2"}, canary_percent=50)
    promoted = staff_client.post("/api/apps/num/canary/promote/")
    assert promoted.status_code == 200 and promoted.json()["converged"], promoted.content
    assert promoted.json()["target_version"] == "2" and promoted.json()["labels"] == {"stable": "2"}
    assert {predict(client)["version"] for _ in range(40)} == {"2"}
    assert ModelApp.objects.get(name="num").pinned_version == "2"
    assert process_registry.get_registry().also("num") == {}, "nothing but the target serves once promoted"

    label(staff_client, labels={"stable": "2", "canary": "1"}, canary_percent=100)
    assert {predict(client)["version"] for _ in range(10)} == {"1"}
    rolled = staff_client.post("/api/apps/num/canary/rollback/")
    assert rolled.status_code == 200 and rolled.json()["labels"] == {"stable": "2"}
    assert rolled.json()["canary_percent"] == 0
    assert {predict(client)["version"] for _ in range(20)} == {"2"}


@pytest.mark.parametrize(
    "body, status, words",
    [
        ({"canary_percent": 10}, 400, "needs a version labelled 'canary'"),
        ({"labels": {"Canary!": "2"}}, 400, "not a valid label"),
        ({"labels": {"canary": "9"}}, 404, "9"),
        ({"canary_percent": 101}, 400, "less than or equal to 100"),
    ],
)
def test_bad_label_changes_change_nothing(num, staff_client, body, status, words):
    generation = ModelApp.objects.get(name="num").generation
    response = label(staff_client, **body)
    assert response.status_code == status and words in str(response.json()), response.content
    assert ModelApp.objects.get(name="num").generation == generation


def test_only_staff_changes_labels(num, client):
    assert client.post("/api/apps/num/labels/", {"labels": {"canary": "2"}}, format="json").status_code in (401, 403)
    assert client.post("/api/apps/num/canary/promote/").status_code in (401, 403)


def test_tf_serving_rest_routes_by_label(num, staff_client, client):
    label(staff_client, labels={"canary": "2"})
    response = client.post("/v1/models/num/labels/canary:predict", TENSOR, format="json")
    assert response.status_code == 200 and response.json()["predictions"] == [[128.0]]
    status = client.get("/v1/models/num/labels/canary").json()["model_version_status"]
    assert [(s["version"], s["state"]) for s in status] == [("2", "AVAILABLE")]
    unknown = client.post("/v1/models/num/labels/beta:predict", TENSOR, format="json")
    assert unknown.status_code == 404 and "Unrecognized servable version label: beta" in unknown.json()["error"]


def test_another_process_follows_a_label_change_and_says_so(num, client):
    """As the watcher of every other process sees it: a new generation whose labels name version 2."""
    row = ModelApp.objects.get(name="num")
    row.generation += 1
    row.labels, row.canary_percent = {"canary": "2"}, 10
    row.save()
    registry = process_registry.get_registry()
    GenerationWatcher(registry, sync_seconds=1).tick()
    assert set(registry.also("num")) == {"2"} and registry.routes("num").canary_percent == 10
    beat = Heartbeat.objects.get(app__name="num", process=heartbeats.beats().process)
    assert beat.also == "2"
    row.labels, row.canary_percent = {}, 0
    row.generation += 1
    row.save()
    GenerationWatcher(registry, sync_seconds=1).tick()
    assert registry.also("num") == {}, "a version no label names is unloaded"


def test_the_admin_promotes_and_rolls_back_a_canary(num, client, staff, staff_client):
    staff.is_superuser = True
    staff.save()
    assert client.login(username="boss", password="pw-boss-123")
    selected = [str(ModelApp.objects.get(name="num").pk)]

    def act(action: str) -> str:
        response = client.post("/admin/yyai/modelapp/", {"action": action, "_selected_action": selected}, follow=True)
        assert response.status_code == 200
        return response.content.decode()

    assert "Num: not rolled back: app &#x27;num&#x27; has no version labelled &#x27;canary&#x27;" in act(
        "roll_back_canaries"
    )
    label(staff_client, labels={"canary": "2"}, canary_percent=10)
    assert "Num: promoted 2; every process serves it" in act("promote_canaries")
    assert ModelApp.objects.get(name="num").target_version == "2"
    label(staff_client, labels={"canary": "1"}, canary_percent=10)
    assert "Num: canary rolled back; every process serves it" in act("roll_back_canaries")
    assert ModelApp.objects.get(name="num").labels == {}
