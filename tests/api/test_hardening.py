"""Throttling, CORS, and a production configuration that `check --deploy` finds clean."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from rest_framework.throttling import ScopedRateThrottle

pytestmark = pytest.mark.django_db

TENSOR = {"instances": [[[[1.0]] * 8] * 8]}


@pytest.fixture
def rates(monkeypatch):
    monkeypatch.setattr(
        ScopedRateThrottle,
        "THROTTLE_RATES",
        {"predict": "2/minute", "reload": None, "upload": None, "token": "1/minute"},
    )


def test_predict_throttled_with_retry_after(store, client, rates):
    for _ in range(2):
        assert client.post("/api/apps/calc/predict/", TENSOR, format="json").status_code == 200
    response = client.post("/api/apps/calc/predict/", TENSOR, format="json")
    assert response.status_code == 429 and response.json()["code"] == "throttled"
    assert int(response["Retry-After"]) > 0


def test_token_endpoint_throttled(store, client, rates, staff):
    client.post("/api/token/", {"username": "boss", "password": "wrong"}, format="json")
    response = client.post("/api/token/", {"username": "boss", "password": "pw-boss-123"}, format="json")
    assert response.status_code == 429


def test_unthrottled_by_default(store, client):
    for _ in range(30):
        assert client.post("/api/apps/calc/predict/", TENSOR, format="json").status_code == 200


def test_cors_only_for_listed_origins(store, client, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    allowed = client.get("/api/apps/", HTTP_ORIGIN="https://app.example.com")
    assert allowed["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "Access-Control-Allow-Origin" not in client.get("/api/apps/", HTTP_ORIGIN="https://evil.example")


def test_check_deploy_is_clean_with_production_env(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "YYAI_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="aiserver.settings",
        DJANGO_DEBUG="0",
        YYAI_DATA_DIR=str(tmp_path),
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="models.example.com",
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout
