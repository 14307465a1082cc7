"""Hostile requests against the real server: each gets its documented 4xx and code, and the server stays healthy.

Sent over raw sockets where a client library would refuse to build the request.
"""

import base64
import http.client
import json
import socket
import struct
import zlib

import cv2
import numpy as np
import pytest
import requests

from tests import modelkit
from tests.liveserver import GunicornServer

pytestmark = pytest.mark.slow

PREDICT = "/api/apps/calc/predict/"


def png(width=8, height=8, value=255) -> bytes:
    return cv2.imencode(".png", np.full((height, width), value, np.uint8))[1].tobytes()


def png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR claiming width x height, with no image data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def raw(server, request: bytes) -> tuple[int, dict]:
    """Send bytes as they are; return the status and the JSON body."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(request)
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = response.read()
    try:
        return response.status, json.loads(body)
    except ValueError:
        return response.status, {}


def request_bytes(method: str, path: str, body: bytes, content_type: str, extra: str = "") -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    modelkit.regressor(store / "calc" / "m.h5", weight=1.0)
    root = tmp_path_factory.mktemp("images")
    (root / "ok.png").write_bytes(png())
    outside = tmp_path_factory.mktemp("outside") / "secret.png"
    outside.write_bytes(png())
    (root / "escape.png").symlink_to(outside)
    env = {
        "YYAI_IMAGE_ROOT": str(root),
        "YYAI_MAX_BODY_BYTES": str(4 << 20),
        "YYAI_MAX_IMAGE_BYTES": str(2 << 20),
        "YYAI_MAX_ROWS_PER_REQUEST": "8",
    }
    with GunicornServer(store=store, data_dir=tmp_path_factory.mktemp("data"), env=env) as running:
        running.outside = outside
        yield running


JSON_CASES = [
    ("empty object", {}, 400, "bad_input"),
    ("bad base64", {"image": "%%%%"}, 400, "bad_base64"),
    ("base64 of text", {"image": b64(b"just some text")}, 415, "not_an_image"),
    ("number as image", {"image": 7}, 400, "bad_base64"),
    ("list as image", {"image": ["a"]}, 400, "bad_base64"),
    ("truncated png", {"image": b64(png()[:30])}, 415, "not_an_image"),
    (
        "truncated jpeg",
        {"image": b64(cv2.imencode(".jpg", np.zeros((64, 64), np.uint8))[1].tobytes()[:200])},
        415,
        "not_an_image",
    ),
    ("30000x30000 png header", {"image": b64(png_header(30000, 30000))}, 413, "image_too_large"),
    ("zero-size png", {"image": b64(png_header(0, 0))}, 415, "not_an_image"),
    (
        "polyglot: png magic then zip",
        {"image": b64(b"\x89PNG\r\n\x1a\n" + b"PK\x03\x04" + b"\0" * 64)},
        415,
        "not_an_image",
    ),
    ("gif", {"image": b64(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")}, 415, "not_an_image"),
    ("huge batch", {"images": [b64(png())] * 9}, 413, "payload_too_large"),
    ("images not a list", {"images": "abc"}, 400, "bad_input"),
    ("instances wrong shape", {"instances": [[1, 2, 3]]}, 400, "bad_tensor_shape"),
    ("instances with NaN-like strings", {"instances": [[[["NaN"]] * 8] * 8]}, 400, "bad_tensor_shape"),
    ("instances too many rows", {"instances": [[[[0.0]] * 8] * 8] * 9}, 400, "bad_tensor_shape"),
    ("two inputs at once", {"image": b64(png()), "instances": []}, 400, "bad_input"),
    ("path traversal", {"imgPath": "../../../../etc/passwd"}, 403, "path_outside_root"),
    ("absolute path", {"imgPath": "/etc/passwd"}, 403, "path_outside_root"),
    ("symlink out of the root", {"imgPath": "escape.png"}, 403, "path_outside_root"),
    ("nul byte in path", {"imgPath": "ok.png\u0000.txt"}, 400, "bad_input"),
    ("missing path", {"imgPath": "nope.png"}, 404, "path_not_found"),
    ("base64 over the image limit", {"image": "A" * (3 << 20)}, 413, "payload_too_large"),
]


@pytest.mark.parametrize("name, payload, status, code", JSON_CASES, ids=[c[0] for c in JSON_CASES])
def test_hostile_json(server, name, payload, status, code):
    response = requests.post(server.url(PREDICT), json=payload, timeout=30)
    assert (response.status_code, response.json()["code"]) == (status, code), response.text


RAW_CASES = [
    ("malformed json", request_bytes("POST", PREDICT, b'{"image": ', "application/json"), 400, "malformed_body"),
    ("json array", request_bytes("POST", PREDICT, b"[1, 2]", "application/json"), 400, "bad_input"),
    ("json string", request_bytes("POST", PREDICT, b'"x"', "application/json"), 400, "bad_input"),
    (
        "invalid utf-8 json",
        request_bytes("POST", PREDICT, b'{"image": "\xff\xfe"}', "application/json"),
        400,
        "malformed_body",
    ),
    (
        "truncated multipart: img becomes text",
        request_bytes(
            "POST",
            PREDICT,
            b'--x\r\nContent-Disposition: form-data; name="img"\r\n\r\ntrunc',
            "multipart/form-data; boundary=x",
        ),
        400,
        "bad_base64",
    ),
    (
        "multipart without boundary",
        request_bytes("POST", PREDICT, b"abc", "multipart/form-data"),
        400,
        "malformed_body",
    ),
    (
        "unsupported content type",
        request_bytes("POST", PREDICT, b"\x00\x01", "application/octet-stream"),
        415,
        "unsupported_media_type",
    ),
    ("xml", request_bytes("POST", PREDICT, b"<a/>", "application/xml"), 415, "unsupported_media_type"),
    (
        "body over the limit",
        request_bytes("POST", PREDICT, b"", "application/json").replace(
            b"Content-Length: 0", f"Content-Length: {8 << 20}".encode()
        ),
        413,
        "payload_too_large",
    ),
    ("wrong method", request_bytes("DELETE", PREDICT, b"", "application/json"), 405, "method_not_allowed"),
    ("unknown app", request_bytes("POST", "/api/apps/nope/predict/", b"{}", "application/json"), 404, "app_not_found"),
    (
        "invalid app name",
        request_bytes("POST", "/api/apps/..%2f..%2fetc/predict/", b"{}", "application/json"),
        404,
        "not_found",
    ),
    ("unknown url", request_bytes("GET", "/wp-admin/setup.php", b"", "text/plain"), 404, "not_found"),
    ("unknown app in the seed namespace", request_bytes("GET", "/wp-admin/", b"", "text/plain"), 404, "app_not_found"),
    (
        "reload without auth",
        request_bytes("POST", "/api/apps/calc/reload/", b"{}", "application/json"),
        401,
        "not_authenticated",
    ),
    (
        "reload with bad basic auth",
        request_bytes("POST", "/api/apps/calc/reload/", b"{}", "application/json", "Authorization: Basic Ym9ndXM=\r\n"),
        401,
        "authentication_failed",
    ),
]


@pytest.mark.parametrize("name, wire, status, code", RAW_CASES, ids=[c[0] for c in RAW_CASES])
def test_hostile_raw(server, name, wire, status, code):
    got_status, body = raw(server, wire)
    assert (got_status, body.get("code")) == (status, code), body


def test_empty_multipart_file(server):
    response = requests.post(server.url(PREDICT), files={"img": ("empty.png", b"")}, timeout=30)
    assert response.status_code in (400, 415) and response.json()["code"] in ("not_an_image", "bad_input")


def test_server_healthy_afterwards(server):
    """Runs last in this module: every hostile request above left the server serving."""
    assert requests.get(server.url("/healthz"), timeout=10).status_code == 200
    assert requests.get(server.url("/readyz"), timeout=10).status_code == 200
    response = requests.post(server.url(PREDICT), json={"image": b64(png())}, timeout=30)
    assert response.status_code == 200 and response.json()["result"][0]["value"] == 64.0
    assert "Traceback" not in server.log()
