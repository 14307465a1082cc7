"""The demo apps under the real gunicorn configuration, over real HTTP: what `make run` serves."""

import base64
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.liveserver import ADMIN_PASSWORD, GunicornServer
from yyai.demo_models import SAMPLE_DIGIT, build_demo_models

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    build_demo_models(store, log=lambda line: None)
    with GunicornServer(store=store, data_dir=tmp_path_factory.mktemp("data"), workers=2) as running:
        running.store = store
        yield running


def test_every_demo_app_is_ready(server):
    apps = requests.get(server.url("/api/apps/"), timeout=10).json()["results"]
    assert {(a["name"], a["state"]) for a in apps} == {
        ("digits", "AVAILABLE"),
        ("facescore", "AVAILABLE"),
        ("predictsex", "AVAILABLE"),
        ("faces", "AVAILABLE"),
    }
    assert requests.get(server.url("/readyz"), timeout=10).status_code == 200


def test_digit_upload_returns_the_right_digit(server):
    with (server.store / "digits" / "sample.png").open("rb") as image:
        response = requests.post(server.url("/api/apps/digits/predict/"), files={"img": image}, timeout=30)
    assert response.status_code == 200, response.text
    [result] = response.json()["result"]
    assert result["label"] == str(SAMPLE_DIGIT) and result["score"] > 0.5


def test_placeholder_apps_say_demo(server):
    for app in ("facescore", "predictsex"):
        body = requests.get(server.url(f"/api/apps/{app}/predict/"), timeout=30).json()
        assert body["demo"] is True and body["result"]
    face = requests.get(server.url("/facescore/"), timeout=30).json()["result"]
    assert [r["name"] for r in face] == ["facescore_cnn.h5", "facescore_small.keras"]
    assert all(1.0 <= r["value"] <= 5.0 for r in face)


def test_seed_reload_route_with_basic_auth(server):
    response = requests.post(server.url("/predictsex_loadmodel/"), auth=("admin", ADMIN_PASSWORD), timeout=60)
    assert response.status_code == 200 and response.json()["app"] == "predictsex"
    assert requests.post(server.url("/predictsex_loadmodel/"), timeout=10).status_code == 401
    refused = requests.get(server.url("/predictsex_loadmodel/"), auth=("admin", ADMIN_PASSWORD), timeout=10)
    assert refused.status_code == 405 and "POST" in refused.json()["error"]  # safe methods change nothing


def test_bad_input_is_json_not_500(server):
    response = requests.post(server.url("/api/apps/digits/predict/"), files={"img": ("x.png", b"nope")}, timeout=10)
    assert response.status_code == 415 and response.json()["code"] == "not_an_image"


def test_the_faces_pipeline_under_concurrent_load(server):
    """16 clients at once, on both workers: every answer finds the same face and runs both apps on it."""
    photo = (server.store / "faces" / "sample.jpg").read_bytes()

    def predict(i: int) -> tuple[int, list]:
        if i % 4 == 3:  # the seed's client among them: the photo back, drawn on
            response = requests.post(server.url("/faces/predictor"), data=base64.b64encode(photo), timeout=60)
            return response.status_code, [len(base64.b64decode(response.content))]
        response = requests.post(server.url("/api/apps/faces/predict/"), files={"img": photo}, timeout=60)
        faces = response.json()["faces"]
        return response.status_code, [(f["box"], sorted(f["apps"]), len(f["apps"]["facescore"])) for f in faces]

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(predict, range(64)))
    assert {status for status, _ in answers} == {200}
    found = {repr(faces) for i, (_, faces) in enumerate(answers) if i % 4 != 3}
    assert len(found) == 1 and "['facescore', 'predictsex'], 2" in found.pop()
    assert all(size > 10_000 for i, (_, [size]) in enumerate(answers) if i % 4 == 3)
    assert requests.get(server.url("/readyz"), timeout=10).status_code == 200
