"""Only a superuser changes users and groups, through the API and the admin alike; staff only read them."""

import pytest
from django.contrib.auth.models import Group, Permission
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(django_user_model):
    return django_user_model.objects.create_superuser("root", password="pw-root-123")


@pytest.fixture
def mighty_staff(django_user_model):
    """A staff member holding every permission on users and groups, but no superuser."""
    user = django_user_model.objects.create_user("mighty", password="pw-mighty-123", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="auth"))
    return user


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_staff_cannot_lock_a_superuser_out_or_raise_anyone(root, mighty_staff, staff):
    client = api(mighty_staff)
    assert client.get("/api/users/").status_code == 200
    for method, path, body in (
        ("patch", f"/api/users/{root.pk}/", {"is_staff": False}),
        ("patch", f"/api/users/{staff.pk}/", {"is_staff": True, "username": "x"}),
        ("delete", f"/api/users/{root.pk}/", None),
        ("post", "/api/users/", {"username": "new", "is_staff": True}),
        ("post", "/api/groups/", {"name": "admins"}),
    ):
        response = getattr(client, method)(path, body, format="json")
        assert response.status_code == 403, (method, path, response.content)
        assert response.json()["error"] == "only a superuser may change users and groups"
    root.refresh_from_db()
    assert root.is_staff and root.is_superuser
    assert not Group.objects.exists()
    done = api(root).patch(f"/api/users/{staff.pk}/", {"is_staff": False}, format="json")
    assert done.status_code == 200 and done.json()["is_staff"] is False
    assert APIClient().get("/api/users/").status_code in (401, 403)


def test_the_admin_agrees(client, root, mighty_staff):
    client.force_login(mighty_staff)
    assert client.get("/admin/auth/user/").status_code == 200, "staff may still look"
    change = client.post(f"/admin/auth/user/{root.pk}/change/", {"username": "root", "is_staff": ""})
    assert change.status_code == 403
    assert (
        client.post(
            f"/admin/auth/user/{root.pk}/password/", {"password1": "taken-over-123", "password2": "taken-over-123"}
        ).status_code
        == 403
    )
    assert client.post("/admin/auth/group/add/", {"name": "admins"}).status_code == 403
    root.refresh_from_db()
    assert root.is_staff and root.check_password("pw-root-123")
    client.force_login(root)
    assert client.get(f"/admin/auth/user/{mighty_staff.pk}/change/").status_code == 200
