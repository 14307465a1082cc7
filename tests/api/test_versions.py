"""POST /api/apps/<app>/versions/: atomic, validated uploads; rollback by pin."""

import io

import pytest

from tests import modelkit
from tests.modelkit import png_bytes

pytestmark = pytest.mark.django_db

URL = "/api/apps/calc/versions/"
TENSOR = {"instances": [[[[1.0]] * 8] * 8]}


def model_bytes(tmp_path, name="m.keras", weight=3.0, **kwargs) -> io.BytesIO:
    data = io.BytesIO(modelkit.regressor(tmp_path / "build" / name, weight=weight, **kwargs).read_bytes())
    data.name = name
    return data


def serving(client, app="calc"):
    body = client.post(f"/api/apps/{app}/predict/", TENSOR, format="json").json()
    return body["version"], [r["value"] for r in body["predictions"][0]]


def leftovers(app_dir):
    return sorted(p.name for p in app_dir.iterdir() if p.name.startswith(".staging") or p.name.isdigit())


def test_upload_validates_publishes_and_serves(store, client, staff_client, tmp_path):
    response = staff_client.post(URL, {"files": [model_bytes(tmp_path)]}, format="multipart")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["version"], body["activated"], body["serving"]) == ("1", True, "1")
    assert body["models"][0]["name"] == "m.keras" and body["models"][0]["params"] == 65
    assert (store / "calc" / "1" / "READY").is_file()
    assert serving(client) == ("1", [192.0])
    detail = client.get("/api/apps/calc/").json()
    assert [(v["version"], v["state"]) for v in detail["versions"]] == [("1", "AVAILABLE")]


def test_upload_without_activation_then_rollback(store, client, staff_client, tmp_path):
    staff_client.post(URL, {"files": [model_bytes(tmp_path, weight=1.0)]}, format="multipart")
    response = staff_client.post(
        URL, {"files": [model_bytes(tmp_path, weight=2.0)], "activate": "false"}, format="multipart"
    )
    assert response.status_code == 201 and response.json()["serving"] is None
    assert serving(client) == ("1", [64.0])
    staff_client.post("/api/apps/calc/reload/", {"version": "latest"}, format="json")
    assert serving(client) == ("2", [128.0])
    staff_client.post("/api/apps/calc/reload/", {"version": 1}, format="json")  # rollback
    assert serving(client) == ("1", [64.0])
    staff_client.post("/api/apps/calc/reload/", {"version": "latest"}, format="json")
    assert serving(client) == ("2", [128.0])


def test_upload_with_its_own_manifest(store, client, staff_client, tmp_path):
    manifest = io.BytesIO(b'description = "v1"\n[output]\ndecimals = 0\n')
    manifest.name = "app.toml"
    response = staff_client.post(
        URL, {"files": [model_bytes(tmp_path, weight=0.0101)], "app.toml": manifest}, format="multipart"
    )
    assert response.status_code == 201, response.content
    assert serving(client)[1] == [1.0]
    assert client.get("/api/apps/calc/").json()["description"] == "v1"


def corrupt(tmp_path):
    data = io.BytesIO(b"\x89HDF\r\n\x1a\n" + b"\x00" * 500)
    data.name = "bad.h5"
    return data


@pytest.mark.parametrize(
    "files, manifest, reason",
    [
        (lambda p: [corrupt(p)], None, "bad.h5"),
        (
            lambda p: [model_bytes(p, "a.keras"), model_bytes(p, "b.keras", input_shape=(4, 4, 1))],
            None,
            "share their inputs",
        ),
        (lambda p: [model_bytes(p)], b'[output]\nkind = "classification"\nlabels = ["a", "b", "c"]\n', "label"),
        (lambda p: [model_bytes(p)], b"[input]\nsize = [9, 9]\n", "does not match"),
        (lambda p: [model_bytes(p)], b"colour = 1\n", "colour"),
    ],
)
def test_invalid_upload_is_refused_and_leaves_nothing(store, client, staff_client, tmp_path, files, manifest, reason):
    before = serving(client)
    payload = {"files": files(tmp_path)}
    if manifest is not None:
        payload["app.toml"] = io.BytesIO(manifest)
        payload["app.toml"].name = "app.toml"
    response = staff_client.post(URL, payload, format="multipart")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_upload" and reason in response.json()["error"]
    assert leftovers(store / "calc") == []
    assert serving(client) == before


@pytest.mark.parametrize("name", ["../evil.h5", "model.pkl", ".hidden.h5"])
def test_bad_file_names(store, staff_client, tmp_path, name):
    data = model_bytes(tmp_path)
    data.name = name
    response = staff_client.post(URL, {"files": [data]}, format="multipart")
    assert response.status_code == 400, response.content
    assert leftovers(store / "calc") == []


def test_upload_creates_a_new_app(store, client, staff_client, tmp_path):
    response = staff_client.post("/api/apps/brandnew/versions/", {"files": [model_bytes(tmp_path)]}, format="multipart")
    assert response.status_code == 201, response.content
    assert serving(client, "brandnew") == ("1", [192.0])


@pytest.mark.parametrize("name", ["admin", "api", "metrics", "healthz", "v2", "Static"])
def test_an_app_may_not_take_a_route_name(store, staff_client, tmp_path, name):
    response = staff_client.post(f"/api/apps/{name}/versions/", {"files": [model_bytes(tmp_path)]}, format="multipart")
    assert response.status_code == 400 and "server's own routes" in response.json()["error"], response.content
    assert not (store / name).exists()


def test_start_up_reports_an_app_named_like_a_route(store, caplog):
    from yyai.fleet import process_registry
    from yyai.lifecycle import startup

    modelkit.regressor(store / "metrics" / "m.h5", weight=1.0)
    process_registry.reset()
    startup.start()
    assert any(
        "app metrics has the name of one of the server's own routes" in r.getMessage() and r.levelname == "WARNING"
        for r in caplog.records
    )


def test_upload_needs_staff(store, client, tmp_path):
    assert client.post(URL, {"files": [model_bytes(tmp_path)]}, format="multipart").status_code == 401


def test_upload_needs_files(store, staff_client):
    response = staff_client.post(URL, {"activate": "true"}, format="multipart")
    assert response.status_code == 400 and response.json()["code"] == "invalid"


def test_image_is_not_a_model(store, staff_client):
    data = io.BytesIO(png_bytes())
    data.name = "x.keras"
    response = staff_client.post(URL, {"files": [data]}, format="multipart")
    assert response.status_code == 400 and response.json()["code"] == "invalid_upload"


def test_upload_validated_in_child_process(store, client, staff_client, tmp_path, settings, yyai):
    yyai.VALIDATE_ISOLATED = True
    assert staff_client.post(URL, {"files": [corrupt(tmp_path)]}, format="multipart").status_code == 400
    response = staff_client.post(URL, {"files": [model_bytes(tmp_path)]}, format="multipart")
    assert response.status_code == 201 and serving(client) == ("1", [192.0])


def test_the_readmes_numbered_walkthrough_keeps_every_model_and_rolls_back(store, client, staff_client):
    """README "numbered versions": the flat files (.h5 and .keras alike) become version 1, new ones version 2,
    then a reload, a rollback to 1 and back to latest, each serving every model of its version."""
    app = store / "calc"
    (app / "1").mkdir()
    for model in [*app.glob("*.h5"), *app.glob("*.keras")]:  # mv *.h5 *.keras 1/
        model.rename(app / "1" / model.name)
    (app / "1" / "READY").touch()
    for name, weight in (("a.h5", 3.0), ("b.keras", 4.0)):
        modelkit.regressor(app / "2" / name, weight=weight)
    (app / "2" / "READY").touch()
    assert staff_client.post("/api/apps/calc/reload/", {}, format="json").status_code == 200
    assert serving(client) == ("2", [192.0, 256.0])
    assert staff_client.post("/api/apps/calc/reload/", {"version": 1}, format="json").status_code == 200
    assert serving(client) == ("1", [64.0, 128.0])  # both of the flat models, none silently dropped
    assert staff_client.post("/api/apps/calc/reload/", {"version": "latest"}, format="json").status_code == 200
    assert serving(client) == ("2", [192.0, 256.0])
