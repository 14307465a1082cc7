"""API fixtures: a model store of real tiny models, served by a fresh registry."""
import cv2
import numpy as np
import pytest
from rest_framework.test import APIClient

from tests import modelkit
from yyai import process_registry, startup

SHAPE = modelkit.SHAPE  # 8x8 gray


def png_bytes(value: int = 255, size=(8, 8), channels=1) -> bytes:
    """A uniform image; for the 'calc' app (weight 1 regressor) its prediction is known."""
    image = np.full((size[1], size[0], channels) if channels > 1 else (size[1], size[0]), value, np.uint8)
    ok, buffer = cv2.imencode(".png", image)
    assert ok
    return buffer.tobytes()


@pytest.fixture
def store(tmp_path, settings, yyai):
    """tmp model store with apps: calc (two regressors) and cls (a 3-class classifier); registry loaded."""
    root = tmp_path / "model_store"
    modelkit.regressor(root / "calc" / "a.h5", weight=1.0)
    modelkit.regressor(root / "calc" / "b.keras", weight=2.0)
    (root / "calc" / "app.toml").write_text('description = "sums"\n[input]\ncolor = "gray"\n[output]\ndecimals = 3\n')
    (root / "calc" / "sample.png").write_bytes(png_bytes(255))
    modelkit.classifier(root / "cls" / "c.h5", classes=3)
    (root / "cls" / "app.toml").write_text('demo = true\n[output]\nlabels = ["x", "y", "z"]\n')
    yyai.MODEL_STORE = root
    process_registry.reset()
    startup.start()
    yield root
    process_registry.reset()


@pytest.fixture
def client():
    return APIClient()


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("boss", password="pw-boss-123", is_staff=True)


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("joe", password="pw-joe-123")


@pytest.fixture
def staff_client(staff):
    api = APIClient()
    api.force_authenticate(staff)
    return api
