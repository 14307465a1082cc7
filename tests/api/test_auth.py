"""The permission matrix (anonymous, user, staff) and the three ways to authenticate."""

import base64

import pytest
from rest_framework.test import APIClient

from tests.modelkit import png_bytes
from yyai.models import ModelApp, ReloadEvent

pytestmark = pytest.mark.django_db

IMAGE = {"image": base64.b64encode(png_bytes()).decode()}


def as_(who, request):
    client = APIClient()
    if who != "anonymous":
        client.force_authenticate(request.getfixturevalue(who))
    return client


@pytest.mark.parametrize(
    "who, predict, reload, users",
    [
        ("anonymous", 200, 401, 401),
        ("user", 200, 403, 403),
        ("staff", 200, 200, 200),
    ],
)
def test_matrix_default(store, request, who, predict, reload, users):
    client = as_(who, request)
    assert client.get("/api/apps/").status_code == 200
    root = client.get("/api/")
    assert root.status_code == 200 and set(root.json()) == {"apps", "reloads", "users", "groups"}
    assert client.post("/api/apps/calc/predict/", IMAGE, format="json").status_code == predict
    assert client.post("/api/apps/calc/reload/").status_code == reload
    assert client.get("/api/users/").status_code == users
    assert client.get("/api/groups/").status_code == users
    assert client.get("/api/reloads/").status_code == users


@pytest.mark.parametrize(
    "rule, expected",
    [
        ("authenticated", {"anonymous": 401, "user": 200, "staff": 200}),
        ("staff", {"anonymous": 401, "user": 403, "staff": 200}),
    ],
)
def test_predict_permission_setting(store, request, settings, rule, expected, yyai):
    yyai.PREDICT_PERMISSION = rule
    for who, status in expected.items():
        response = as_(who, request).post("/api/apps/calc/predict/", IMAGE, format="json")
        assert response.status_code == status, who
        if status != 200:
            assert response.json()["code"] in ("not_authenticated", "permission_denied")


def test_basic_auth_as_in_the_seed(store, staff):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"boss:pw-boss-123").decode())
    assert client.post("/api/apps/calc/reload/").status_code == 200
    client.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"boss:wrong").decode())
    response = client.post("/api/apps/calc/reload/")
    assert response.status_code == 401 and response.json()["code"] == "authentication_failed"


def test_token_auth(store, staff):
    client = APIClient()
    response = client.post("/api/token/", {"username": "boss", "password": "pw-boss-123"}, format="json")
    assert response.status_code == 200
    client.credentials(HTTP_AUTHORIZATION="Token " + response.json()["token"])
    assert client.post("/api/apps/calc/reload/").status_code == 200
    assert APIClient().post("/api/token/", {"username": "boss", "password": "x"}, format="json").status_code == 400


def test_session_login_and_admin_pages(store, client, staff):
    staff.is_superuser = True
    staff.save()
    assert client.login(username="boss", password="pw-boss-123")
    for url in ("/admin/", "/admin/yyai/modelapp/", "/admin/yyai/reloadevent/", "/admin/auth/user/"):
        assert client.get(url).status_code == 200, url
    selected = [str(pk) for pk in ModelApp.objects.values_list("pk", flat=True)]
    response = client.post(
        "/admin/yyai/modelapp/", {"action": "reload_apps", "_selected_action": selected}, follow=True
    )
    assert response.status_code == 200 and b'<li class="success">Calc: ' in response.content
    assert ReloadEvent.objects.filter(trigger="admin", user=staff).count() == 2


def test_an_anonymous_browser_sees_the_api_root_and_the_apps_with_a_login_link(store, client):
    for path in ("/api/", "/api/apps/"):
        page = client.get(path, HTTP_ACCEPT="text/html")
        assert page.status_code == 200 and "/api-auth/login/" in page.content.decode(), path
