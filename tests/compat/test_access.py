"""The protocols follow the predict permission setting; probes stay open; errors keep each protocol's shape."""

import pytest

from tests.compat.conftest import ONES

pytestmark = pytest.mark.django_db


@pytest.fixture
def login_required(settings, store, yyai):
    yyai.PREDICT_PERMISSION = "authenticated"


@pytest.mark.parametrize(
    "path, body, shape",
    [
        ("/v1/models/calc:predict", {"instances": ONES.tolist()}, {"error"}),
        (
            "/v2/models/calc/infer",
            {"inputs": [{"name": "x", "shape": [1, 8, 8, 1], "datatype": "FP32", "data": ONES.ravel().tolist()}]},
            {"error"},
        ),
        ("/calc/infer", None, {"code", "message"}),
    ],
)
def test_anonymous_calls_need_a_login(client, login_required, path, body, shape):
    r = client.post(path, body, format="json") if body else client.post(path)
    assert r.status_code == 401 and set(r.json()) == shape
    assert r["WWW-Authenticate"]


def test_logged_in_users_and_probes_pass(client, user, login_required):
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    client.force_authenticate(user)
    assert client.post("/v1/models/calc.a:predict", {"instances": ONES.tolist()}, format="json").json() == {
        "predictions": [[64.0]]
    }
