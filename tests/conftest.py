"""Suite-wide fixtures, among them the model store most tests share (real tiny models, a fresh registry)."""

import pytest
from django.test import override_settings

from tests import modelkit
from yyai.runtime.version_models import DEMO_MODEL_PREFIX


class YyaiOverrides:
    """``yyai.MAX_BODY_BYTES = 1024`` in a test: settings.YYAI changed for that test only (pytest-django)."""

    def __init__(self, settings):
        object.__setattr__(self, "_settings", settings)

    def __setattr__(self, name: str, value) -> None:
        self._settings.YYAI = {**self._settings.YYAI, name: value}


@pytest.fixture
def yyai(settings) -> YyaiOverrides:
    return YyaiOverrides(settings)


@pytest.fixture(autouse=True)
def _fresh_throttle_counters():
    """Throttle counters live in the cache; one test's requests must not count against the next's limits."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture(scope="module")
def zoo_store(tmp_path_factory, django_db_setup, django_db_blocker):
    """A model store of every model shape (tests/zoo.py), served by this process's registry, per module."""
    from django.conf import settings

    from tests import zoo
    from yyai.fleet import process_registry
    from yyai.lifecycle import startup

    root = zoo.build_store(tmp_path_factory.mktemp("zoo") / "model_store")
    with override_settings(YYAI={**settings.YYAI, "MODEL_STORE": root}), django_db_blocker.unblock():
        _forget_fleet()  # rows another module's store committed name versions this store does not have
        process_registry.reset()
        startup.start()
        yield root
        process_registry.reset()
        _forget_fleet()


def _forget_fleet() -> None:
    from yyai.models import Heartbeat, ModelApp, ServingProcess

    Heartbeat.objects.all().delete()
    ModelApp.objects.all().delete()
    ServingProcess.objects.all().delete()


@pytest.fixture
def zoo_rows(zoo_store, db):
    """The zoo's apps with their database rows, written as start-up writes them (an earlier test's flush of the
    database removes the rows zoo_store's start-up committed)."""
    from yyai.fleet.process_registry import get_registry
    from yyai.services import sync_apps

    sync_apps(names=get_registry().names())
    return zoo_store


@pytest.fixture
def store(tmp_path, settings, yyai):
    """tmp model store with apps: calc (two regressors) and cls (a 3-class classifier); registry loaded."""
    from yyai.fleet import heartbeats, process_registry
    from yyai.lifecycle import startup

    root = tmp_path / "model_store"
    modelkit.regressor(root / "calc" / "a.h5", weight=1.0)
    modelkit.regressor(root / "calc" / "b.keras", weight=2.0)
    (root / "calc" / "app.toml").write_text('description = "sums"\n[input]\ncolor = "gray"\n[output]\ndecimals = 3\n')
    (root / "calc" / "sample.png").write_bytes(modelkit.png_bytes(255))
    modelkit.classifier(root / "cls" / "c.h5", classes=3, name=f"{DEMO_MODEL_PREFIX}cls")  # a placeholder
    (root / "cls" / "app.toml").write_text('demo = true\n[output]\nlabels = ["x", "y", "z"]\n')
    yyai.MODEL_STORE = root
    process_registry.reset()
    heartbeats._beats = None  # a new process for the fleet, as the database was emptied: no state carried over
    startup.start()
    yield root
    process_registry.reset()


@pytest.fixture(scope="session")
def faces_demo(tmp_path_factory):
    """facescore, predictsex and faces as the demo builder makes them (faces: a handler, no weights)."""
    from yyai.demo_models import build_demo_models

    root = tmp_path_factory.mktemp("faces") / "model_store"
    build_demo_models(root, log=lambda line: None, apps=("facescore", "predictsex", "faces"))
    return root


@pytest.fixture
def faces_store(faces_demo, yyai):
    """The faces demo store, served by this process's registry."""
    from yyai.fleet import process_registry
    from yyai.lifecycle import startup

    yyai.MODEL_STORE = faces_demo
    process_registry.reset()
    startup.start()
    yield faces_demo
    process_registry.reset()


@pytest.fixture(scope="session")
def s3_server():
    """An S3-compatible server on loopback (moto's), for the whole session."""
    from tests import s3kit

    with s3kit.running() as server:
        yield server


@pytest.fixture
def s3(s3_server, monkeypatch):
    """A fresh bucket on the loopback S3 server, and this process configured for it by the AWS_* variables."""
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    return s3_server.bucket()


@pytest.fixture
def client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("boss", password="pw-boss-123", is_staff=True)


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("joe", password="pw-joe-123")


@pytest.fixture
def staff_client(staff):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(staff)
    return api
