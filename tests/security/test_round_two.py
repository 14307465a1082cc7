"""The second hostile corpus, class by class, against a real gunicorn (and gRPC in process).

Every refusal is JSON in the error format with its status; the server stays healthy and its probes
answer fast throughout. Limits are tightened by the environment so that each attack is cheap to send.
"""

import base64
import http.client
import json
import shutil
import socket
import threading
import time

import cv2
import numpy as np
import pytest
import requests

from tests import modelkit
from tests.liveserver import ADMIN_PASSWORD, GunicornServer

pytestmark = pytest.mark.slow

PREDICT = "/api/apps/calc/predict/"
AUTH = ("admin", ADMIN_PASSWORD)
DEEP = b"[" * 100_000 + b"]" * 100_000


def png(width=8, height=8, value=255) -> bytes:
    return cv2.imencode(".png", np.full((height, width), value, np.uint8))[1].tobytes()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def raw(port: int, request: bytes, *, timeout: float = 30) -> tuple[int, dict, dict]:
    """Send bytes as they are; (status, JSON body, headers)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = response.read()
        headers = {k.lower(): v for k, v in response.getheaders()}
    assert headers.get("content-type", "").startswith("application/json"), (response.status, body[:200])
    return response.status, json.loads(body), headers


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    modelkit.regressor(store / "calc" / "m.h5", weight=1.0)
    (store / "calc" / "app.toml").write_text('[input]\ncolor = "gray"\n')
    modelkit.regressor(store / "big" / "m.h5", weight=1.0, input_shape=(350, 350, 3))
    env = {
        "YYAI_BODY_TIMEOUT_SECONDS": "2",
        "YYAI_HEADER_TIMEOUT_SECONDS": "2",
        "YYAI_MAX_QUEUED_BYTES": str(64 << 20),
        "YYAI_MAX_REQUEST_PIXELS": "20000000",
        "YYAI_THROTTLE_RELOAD": "",
        "GUNICORN_THREADS": "4",
        "YYAI_LOGIN_FAILURES_PER_USER": "5",
        "YYAI_LOGIN_FAILURES_PER_CLIENT": "12",
    }
    with GunicornServer(store=store, data_dir=tmp_path_factory.mktemp("data"), env=env) as running:
        running.store = store
        yield running


def assert_json_error(response, status: int, code: str | None = None):
    assert response.status_code == status, response.text[:300]
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) >= {"error", "code"} or set(body) == {"error"}, body
    if code:
        assert body["code"] == code
    return body


# -- 1. bounded parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, auth",
    [
        (PREDICT, None),
        (PREDICT + "?format=json", None),
        ("/calc/", None),
        ("/v1/models/calc:predict", None),
        ("/v2/models/calc/infer", None),
        ("/api/token/", None),
        ("/api/apps/calc/reload/", AUTH),
    ],
)
def test_json_nested_100000_levels_is_a_400_everywhere(server, path, auth):
    response = requests.post(
        server.url(path), data=DEEP, auth=auth, timeout=30, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text[:300]
    assert response.headers["Content-Type"].startswith("application/json")
    assert "nested" in response.json()["error"]


@pytest.mark.parametrize(
    "path, body, status",
    [
        ("/v2/models/calc/infer", {"parameters": [1], "inputs": []}, 400),
        ("/v2/models/calc/infer", {"inputs": [{"name": "x", "shape": [1] * 65, "datatype": "FP32", "data": [1]}]}, 400),
        (
            "/v2/models/calc/infer",
            {"inputs": [{"name": "x", "shape": [2**40, 2**40], "datatype": "FP32", "data": [1]}]},
            413,
        ),
        (
            "/v2/models/calc/infer",
            {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1], "parameters": "binary"}]},
            400,
        ),
        (
            "/v2/models/calc/infer",
            {
                "inputs": [{"name": "x", "shape": [1, 8, 8, 1], "datatype": "FP32", "data": [0] * 64}],
                "outputs": [{"name": "y", "parameters": 3}],
            },
            400,
        ),
        ("/v1/models/calc:classify", {"examples": [{"x": [0] * 64}], "context": [1, 2]}, 400),
        ("/v1/models/calc:predict", {"instances": [[[[1]]]], "signature_name": 7}, 400),
        ("/v1/models/calc:predict", {"inputs": {"x": [2**70]}}, 400),
    ],
)
def test_protocol_fields_are_type_checked(server, path, body, status):
    assert_json_error(requests.post(server.url(path), json=body, timeout=30), status)


# -- 2. safe methods change nothing ----------------------------------------------------------------


def test_get_of_the_seed_reload_route_is_a_405_and_reloads_nothing(server):
    session = requests.Session()
    login = session.get(server.url("/admin/login/"), timeout=30)
    token = login.cookies["csrftoken"]
    session.post(
        server.url("/admin/login/"),
        data={"username": "admin", "password": ADMIN_PASSWORD, "csrfmiddlewaretoken": token, "next": "/admin/"},
        headers={"Referer": server.url("/admin/login/")},
        timeout=30,
    )
    assert "sessionid" in session.cookies
    before = requests.get(server.url("/api/apps/calc/"), timeout=30).json()["generation"]
    body = assert_json_error(session.get(server.url("/calc_loadmodel/"), timeout=30), 405)
    assert "POST" in body["error"]
    assert_json_error(session.post(server.url("/calc_loadmodel/"), timeout=30), 403, "csrf_failed")  # no token
    assert requests.get(server.url("/api/apps/calc/"), timeout=30).json()["generation"] == before


# -- 3 and 4. uploads: no code, nothing left behind ----------------------------------------------------


def lambda_model(path):
    import keras

    inputs = keras.Input(shape=(4,))
    keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs)).save(path)
    return path


def test_an_upload_cannot_enable_code_and_a_refused_new_app_leaves_nothing(server, tmp_path):
    model = lambda_model(tmp_path / "lam.keras")
    files = [("files", ("lam.keras", model.read_bytes())), ("app.toml", ("app.toml", b"trust_code = true\n"))]
    body = assert_json_error(
        requests.post(server.url("/api/apps/sneaky/versions/"), files=files, auth=AUTH, timeout=120), 400
    )
    assert "trust_code" in body["error"]
    assert not (server.store / "sneaky").exists()
    files = [("files", ("lam.keras", model.read_bytes()))]  # no manifest: still safe mode
    assert_json_error(
        requests.post(server.url("/api/apps/sneaky/versions/"), files=files, auth=AUTH, timeout=120),
        400,
        "invalid_upload",
    )
    assert not (server.store / "sneaky").exists()
    assert requests.get(server.url("/readyz"), timeout=30).status_code == 200


# -- 5. CPU work off the event loop; pixel budget ----------------------------------------------------


def test_large_images_do_not_stall_the_probes(server):
    huge = b64(cv2.imencode(".png", np.zeros((4000, 4000), np.uint8))[1].tobytes())  # 16 Mpx in a few KB
    stop, latencies = threading.Event(), []

    def attacker():
        while not stop.is_set():
            requests.post(server.url(PREDICT), json={"image": huge}, timeout=60)

    attackers = [threading.Thread(target=attacker) for _ in range(4)]
    for t in attackers:
        t.start()
    try:
        time.sleep(1.0)
        for _ in range(10):
            started = time.monotonic()
            assert requests.get(server.url("/healthz"), timeout=5).status_code == 200
            latencies.append(time.monotonic() - started)
            time.sleep(0.2)
    finally:
        stop.set()
        for t in attackers:
            t.join(60)
    assert max(latencies) < 1.0, latencies


def test_per_request_pixel_budget(server):
    image = b64(cv2.imencode(".png", np.zeros((3000, 3000), np.uint8))[1].tobytes())  # 9 Mpx each
    body = assert_json_error(
        requests.post(server.url(PREDICT), json={"images": [image] * 3}, timeout=60), 413, "image_too_large"
    )
    assert "together" in body["error"]


# -- 6. admission by bytes ---------------------------------------------------------------------------


def test_admission_by_bytes(server):
    one_pixel = b64(cv2.imencode(".png", np.zeros((1, 1, 3), np.uint8))[1].tobytes())
    # 64 one-pixel PNGs (a few KB) become 64 x 350 x 350 x 3 float32 = 94 MB of model input: over the 64 MiB budget
    body = assert_json_error(
        requests.post(server.url("/api/apps/big/predict/"), json={"images": [one_pixel] * 64}, timeout=60),
        413,
        "payload_too_large",
    )
    assert "bytes of model input" in body["error"]
    answers = []

    def client():
        answers.append(
            requests.post(server.url("/api/apps/big/predict/"), json={"images": [one_pixel] * 40}, timeout=60)
        )

    clients = [threading.Thread(target=client) for _ in range(6)]  # 6 x 59 MB queued at once: over the budget
    for t in clients:
        t.start()
    for t in clients:
        t.join(120)
    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) <= {200, 503} and 200 in statuses, statuses
    for answer in answers:
        if answer.status_code == 503:
            assert answer.json()["code"] == "overloaded" and int(answer.headers["Retry-After"]) >= 1


# -- 7. deadlines ------------------------------------------------------------------------------------


def trickle(port: int, *, headers_done: bool, hold: float) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = f"POST {PREDICT} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n"
    sock.sendall(head.encode() + (b"\r\n{" if headers_done else b""))
    return sock


def read_status(sock: socket.socket) -> tuple[int, dict]:
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, json.loads(response.read())


def test_slow_bodies_get_408_and_pin_nothing(server):
    slow = [trickle(server.port, headers_done=True, hold=5) for _ in range(12)]  # more than the 4 Django threads
    try:
        started = time.monotonic()
        assert requests.get(server.url("/healthz"), timeout=5).status_code == 200
        assert requests.get(server.url("/api/apps/"), timeout=5).status_code == 200  # Django's threads are free
        assert time.monotonic() - started < 1.0
        statuses = [read_status(sock) for sock in slow]
        assert {(status, body["code"]) for status, body in statuses} == {(408, "request_timeout")}
    finally:
        for sock in slow:
            sock.close()


def test_slow_and_huge_headers(server):
    sock = trickle(server.port, headers_done=False, hold=5)
    try:
        assert read_status(sock) == (
            408,
            {"error": "the request headers did not arrive within 2 s", "code": "request_timeout"},
        )
    finally:
        sock.close()
    status, body, _ = raw(
        server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 70_000 + b"\r\n\r\n"
    )
    assert (status, body["code"]) == (431, "headers_too_large")
    status, body, _ = raw(server.port, b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    assert (status, body["code"]) == (405, "method_not_allowed")
    status, body, _ = raw(
        server.port, f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Length: {1 << 40}\r\n\r\n".encode()
    )
    assert (status, body["code"]) == (413, "payload_too_large")


# -- 10. quiet errors, and JSON everywhere ---------------------------------------------------------------


def test_no_absolute_path_or_library_message_for_anonymous_callers(server):
    modelkit.random_bytes(server.store / "broken" / "m.h5")
    reload = requests.post(server.url("/api/apps/broken/reload/"), auth=AUTH, timeout=60)
    body = assert_json_error(reload, 422, "model_load_failed")
    assert str(server.store) not in body["error"] and "broken/" in body["error"]  # staff: store-relative
    for response in (
        requests.get(server.url("/api/apps/broken/"), timeout=30),
        requests.post(server.url("/api/apps/broken/predict/"), json={"image": b64(png())}, timeout=30),
    ):
        text = response.text
        assert str(server.store) not in text and "HDF5" not in text and "signature" not in text, text
    shutil.rmtree(server.store / "broken")


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("GET", "/nope/", b""),
        ("DELETE", PREDICT, b""),
        ("PUT", "/healthz", b""),
        ("POST", "/metrics", b""),
        ("POST", PREDICT, b"\xff\xfe"),
        ("POST", "/api/apps/", b"{}"),
        ("PATCH", "/v2/models/calc/infer", b"{}"),
        ("POST", "/v1/models/calc:predict", b"{"),
        ("GET", "/v2/models/nope", b""),
        ("POST", "/calc/infer", b"x"),
        ("POST", "/calc/predictor", b"%%%"),
        ("GET", "/samples/nope", b""),
        ("POST", "/api/token/", b"x"),
        ("GET", "/api/reloads/", b""),
        ("GET", "/v1/models/calc/versions/9", b""),
        ("POST", "/calc_loadmodel/", b""),
    ],
)
def test_every_error_is_json(server, method, path, body):
    request = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    status, answer, _ = raw(server.port, request)
    assert status >= 400 and ("error" in answer or set(answer) == {"code", "message"})  # /infer: the seed's envelope


# -- 8. authentication abuse (last: it locks this client out) ------------------------------------------------


def test_password_guessing_is_throttled_per_user_whatever_the_client_claims(server):
    for i in range(5):
        wrong = requests.get(
            server.url("/api/reloads/"),
            auth=("guessme", f"wrong-{i}"),
            timeout=30,
            headers={"X-Forwarded-For": f"10.0.0.{i}"},
        )  # spoofed: not a trusted proxy
        assert wrong.status_code == 401
    User = "guessme"  # noqa: N806 - the locked user, whatever the password now
    locked = requests.get(server.url("/api/reloads/"), auth=(User, "even-the-right-one"), timeout=30)
    assert_json_error(locked, 429, "throttled")
    assert int(locked.headers["Retry-After"]) >= 1
    token = requests.post(server.url("/api/token/"), json={"username": User, "password": "x"}, timeout=30)
    assert_json_error(token, 429, "throttled")
    admin_login = requests.post(server.url("/admin/login/"), data={"username": User, "password": "x"}, timeout=30)
    assert admin_login.status_code in (403, 429)  # 403: no CSRF cookie; either way no password is checked


def test_password_guessing_is_throttled_per_client(server):
    for i in range(12):
        requests.post(server.url("/api/token/"), json={"username": f"user{i}", "password": "x"}, timeout=30)
    response = requests.post(
        server.url("/api/token/"), json={"username": "admin", "password": ADMIN_PASSWORD}, timeout=30
    )
    assert_json_error(response, 429, "throttled")


def test_the_server_is_healthy_afterwards(server):
    assert requests.get(server.url("/readyz"), timeout=30).status_code == 200
    response = requests.post(server.url(PREDICT), json={"image": b64(png())}, timeout=30)
    assert response.status_code == 200 and response.json()["result"][0]["value"] == 64.0
