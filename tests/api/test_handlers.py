"""Handlers over HTTP: hooks around the models, apps calling apps, and what a failing hook or upload answers."""

import io
import logging
import textwrap
import threading

import numpy as np
import pytest

from tests import modelkit
from yyai import metrics
from yyai.fleet import process_registry
from yyai.http import fastpath
from yyai.lifecycle import startup

pytestmark = pytest.mark.django_db

SCALED = """
import threading
import numpy as np
from yyai.runtime.errors import InputError

class Scaled:
    def setup(self, context):
        self.factor = context.config["scaled"]["factor"]

    def preprocess(self, request, context):
        if not isinstance(request.instances, list):
            raise InputError("send instances: one number per row")
        rows = np.asarray(request.instances, dtype=np.float32) * self.factor
        return {"pixels": np.repeat(rows, 64).reshape(-1, 8, 8, 1)}

    def postprocess(self, outputs, request, context):
        if request.instances == [13]:
            raise ZeroDivisionError("an unlucky number")
        return {"sums": outputs["m.h5"]["y"][:, 0], "thread": threading.current_thread().name}
"""

PIPE = """
import numpy as np

class Pipe:
    def postprocess(self, outputs, request, context):
        image = context.decode_image(request.images[0])
        answer = context.predict("calc", images=[image, image[:4, :4]])
        return {"calc": answer["predictions"], "calc_version": answer["version"]}
"""

CIRCLE = """
class Circle:
    def postprocess(self, outputs, request, context):
        return context.predict("{other}", images=request.images)
"""


def write(folder, name, text):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(text))


@pytest.fixture
def hooked(tmp_path, yyai):
    """calc (two regressors on 8x8 gray, batching waits 20 ms), scaled (a regressor between two hooks), pipe (a
    handler calling calc) and ping/pong (handlers calling each other)."""
    root = tmp_path / "model_store"
    modelkit.regressor(root / "calc" / "a.h5", weight=1.0)
    modelkit.regressor(root / "calc" / "b.keras", weight=2.0)
    write(root / "calc", "app.toml", '[input]\ncolor = "gray"\n[batching]\nbatch_timeout_micros = 20000\n')
    modelkit.regressor(root / "scaled" / "m.h5", weight=1.0)
    write(root / "scaled", "app.toml", 'handler = "handler.py"\n[scaled]\nfactor = 2.0\n')
    write(root / "scaled", "handler.py", SCALED)
    write(root / "pipe", "app.toml", 'handler = "handler.py"\n')
    write(root / "pipe", "handler.py", PIPE)
    for name, other in (("ping", "pong"), ("pong", "ping")):
        write(root / name, "app.toml", 'handler = "handler.py"\n')
        write(root / name, "handler.py", CIRCLE.format(other=other))
    yyai.MODEL_STORE = root
    process_registry.reset()
    startup.start()
    yield root
    process_registry.reset()


def test_hooks_run_around_the_models_batcher(hooked, client):
    response = client.post("/api/apps/scaled/predict/", {"instances": [1, 0.5]}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["sums"] == [128.0, 64.0]  # 64 pixels of value * factor 2, summed by the weight-1 regressor
    assert list(body)[:3] == ["app", "version", "demo"] and body["app"] == "scaled"
    assert not body["thread"].startswith("cpu")  # a Django request thread, never the event loop or the CPU pool


def test_images_past_the_pixel_limits_are_refused_before_any_hook_runs(hooked, client, yyai):
    yyai.MAX_IMAGE_PIXELS = 100
    response = client.post(
        "/api/apps/pipe/predict/", {"image": _b64(modelkit.png_bytes(255, size=(11, 10)))}, format="json"
    )
    assert response.status_code == 413 and response.json()["code"] == "image_too_large"
    yyai.MAX_IMAGE_PIXELS, yyai.MAX_REQUEST_PIXELS = 100, 150
    images = [_b64(modelkit.png_bytes(255, size=(10, 10)))] * 2  # 100 pixels each, 200 together
    response = client.post("/api/apps/pipe/predict/", {"images": images}, format="json")
    assert response.status_code == 413 and "more than 150 pixels together" in response.json()["error"]


def test_the_app_shows_its_handler(hooked, client):
    scaled = client.get("/api/apps/scaled/").json()
    assert scaled["handler"] == {"file": "handler.py", "hooks": ["postprocess", "preprocess", "setup"]}
    assert [m["name"] for m in scaled["models"]] == ["m.h5"]
    pipe = client.get("/api/apps/pipe/").json()
    assert (pipe["state"], pipe["models"], pipe["handler"]["hooks"]) == ("AVAILABLE", [], ["postprocess"])
    assert client.get("/api/apps/calc/").json()["handler"] is None


def test_an_error_in_a_hook_is_a_json_500_naming_app_and_hook_and_the_server_goes_on(hooked, client, caplog):
    with caplog.at_level(logging.ERROR):
        response = client.post("/api/apps/scaled/predict/", {"instances": [13]}, format="json")
    assert response.status_code == 500
    assert response.json() == {
        "error": "the handler of app 'scaled' failed in its postprocess hook; the details are in the server log",
        "code": "handler_failed",
    }
    assert "ZeroDivisionError: an unlucky number" in caplog.text and "Traceback" in caplog.text
    assert client.post("/api/apps/scaled/predict/", {"instances": [1]}, format="json").status_code == 200


def test_a_hook_refusing_the_input_answers_400_with_its_words(hooked, client):
    response = client.post("/api/apps/scaled/predict/", {"inputs": [1]}, format="json")
    assert response.status_code == 400
    assert response.json() == {"error": "send instances: one number per row", "code": "bad_input"}


def test_a_handler_calls_another_app_through_the_data_plane(hooked, client):
    rows = metrics.MODEL_ROWS.labels("calc", "a.h5", process_registry.get_registry().get("calc").current.id)
    before = rows._value.get()
    response = client.post("/api/apps/pipe/predict/", {"image": _b64(modelkit.png_bytes(255))}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    direct = client.post(
        "/api/apps/calc/predict/",
        {"images": [_b64(modelkit.png_bytes(255)), _b64(modelkit.png_bytes(255, size=(4, 4)))]},
        format="json",
    ).json()
    assert body["calc"] == direct["predictions"] and body["calc_version"] == direct["version"]
    assert body["calc"][0][0]["value"] == 64.0  # the decoded array went to calc as a lossless PNG
    assert rows._value.get() - before == 4  # both calls counted in calc's metrics, two rows each


def test_handler_calls_share_the_other_apps_batches(hooked, client):
    """Concurrent pipe requests and direct calc requests meet in calc's batcher (it waits 20 ms for company)."""
    batcher = process_registry.get_registry().get("calc").current.batcher
    batches, rows = batcher.batches, batcher.rows
    image = _b64(modelkit.png_bytes(255))
    statuses = []

    def call(app):
        from rest_framework.test import APIClient

        statuses.append(APIClient().post(f"/api/apps/{app}/predict/", {"image": image}, format="json").status_code)

    threads = [threading.Thread(target=call, args=("pipe" if i % 2 else "calc",)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 16
    assert batcher.rows - rows == 8 * 2 + 8  # pipe sends two rows per call, calc one
    assert batcher.batches - batches < 16  # some batches held rows of several callers


def test_apps_calling_each_other_in_a_circle_fail_instead_of_hanging(hooked, client):
    response = client.post("/api/apps/ping/predict/", {"image": _b64(modelkit.png_bytes(255))}, format="json")
    assert response.status_code == 500 and response.json()["code"] == "handler_failed"


def test_an_app_of_only_a_handler_has_no_tensor_endpoints(hooked, client):
    assert client.get("/v1/models/pipe/metadata").status_code == 404
    response = client.post(
        "/v2/models/pipe/infer",
        {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]},
        format="json",
    )
    assert response.status_code == 404 and "answers at POST /api/apps/pipe/predict/" in response.json()["error"]
    assert client.get("/v2/models/pipe/ready").status_code == 404


def test_the_fast_path_leaves_handler_apps_to_django(hooked):
    assert fastpath._serving("calc") and not fastpath._serving("scaled") and not fastpath._serving("pipe")


def test_a_reload_with_a_broken_handler_answers_422_and_the_old_version_serves(hooked, client, staff_client):
    before = client.post("/api/apps/scaled/predict/", {"instances": [1]}, format="json").json()
    write(
        hooked / "scaled",
        "handler.py",
        SCALED.replace("def setup(self, context):", "def setup(self, context):\n        raise OSError('disk')"),
    )
    response = staff_client.post("/api/apps/scaled/reload/", {}, format="json")
    assert response.status_code == 422 and response.json()["code"] == "handler_load_failed"
    assert "setup failed: OSError: disk" in response.json()["error"]
    after = client.post("/api/apps/scaled/predict/", {"instances": [1]}, format="json").json()
    assert (after["version"], after["sums"]) == (before["version"], before["sums"])
    write(hooked / "scaled", "app.toml", 'handler = "handler.py"\n[scaled]\nfactor = 3.0\n')
    write(hooked / "scaled", "handler.py", SCALED)
    assert staff_client.post("/api/apps/scaled/reload/", {}, format="json").status_code == 200
    assert client.post("/api/apps/scaled/predict/", {"instances": [1]}, format="json").json()["sums"] == [192.0]


@pytest.mark.parametrize("name", ["handler.py", "helper.pyc", "native.so"])
def test_an_upload_carrying_code_is_refused_and_nothing_is_kept(hooked, staff_client, name):
    code = io.BytesIO(b"class Evil:\n    def setup(self, context):\n        import os\n")
    code.name = name
    response = staff_client.post("/api/apps/calc/versions/", {"files": [code]}, format="multipart")
    assert response.status_code == 400 and "an upload never carries code" in response.json()["error"]
    assert not [p for p in (hooked / "calc").iterdir() if p.name.isdigit() or p.name.startswith(".staging")]


def test_an_uploaded_manifest_may_not_name_a_handler(hooked, staff_client, tmp_path):
    model = io.BytesIO(modelkit.regressor(tmp_path / "m.keras", weight=1.0).read_bytes())
    model.name = "m.keras"
    manifest = io.BytesIO(b'handler = "handler.py"\n')
    manifest.name = "app.toml"
    response = staff_client.post(
        "/api/apps/calc/versions/", {"files": [model], "manifest": manifest}, format="multipart"
    )
    assert response.status_code == 400 and "may not name a handler" in response.json()["error"]


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def test_arrays_sent_by_a_handler_keep_every_pixel():
    from yyai.runtime.handlers import _encoded
    from yyai.runtime.preprocess import decode_image

    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(decode_image(_encoded(image)), image)
