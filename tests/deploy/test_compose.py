"""docker-compose.yml's wiring, checked without a container engine (none runs in CI).

Each check is a way the file could fail as written: the HTTPS redirect to a
port nginx does not serve, a proxy whose headers the instances do not
believe, an upstream name or port that matches no service, replicas racing to
migrate, a gRPC server bound where nobody can reach it, a variable that must
be set before anything starts. The app's environment is then loaded by the
real settings, and must serve plain HTTP.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
IMAGE_SERVICES = ("init", "app", "grpc")


def interpolate(value, env: dict[str, str]):
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} (an unset required variable raises)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match) -> str:
        name, op, arg = match["name"], match["op"], match["arg"] or ""
        if env.get(name):
            return env[name]
        if op == ":?":
            raise KeyError(f"${{{name}}} must be set: {arg}")
        return arg if op == ":-" else ""

    return re.sub(r"\$\{(?P<name>\w+)(?:(?P<op>:-|:\?)(?P<arg>[^}]*))?\}", one, value)


@pytest.fixture(scope="module")
def compose() -> dict:
    return interpolate(yaml.safe_load((ROOT / "docker-compose.yml").read_text()), env={})  # nothing set


def test_runs_with_no_variable_set(compose):
    """Interpolating with an empty environment raised nothing (fixture); every image service is built here."""
    for name in IMAGE_SERVICES:
        assert compose["services"][name]["build"] == "." and (ROOT / "Dockerfile").exists()


def test_plain_http_unless_nginx_serves_tls(compose):
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    tls = re.search(r"^\s*listen\s+[^;]*\bssl\b", nginx, re.M)
    for name in IMAGE_SERVICES:
        assert compose["services"][name]["environment"]["DJANGO_HTTPS"] == ("1" if tls else "0"), name


def test_nginx_config_matches_the_services(compose):
    services = compose["services"]
    mounts = services["nginx"]["volumes"]
    assert "./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro" in mounts
    upstream = re.search(r"^\s*server (\w+):(\d+)", (ROOT / "deploy" / "nginx.conf").read_text(), re.M)
    assert upstream[1] in services and upstream[1] == "app"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(rf"^\s*PORT={upstream[2]}\b", dockerfile, re.M), "nginx's upstream port is not the image's PORT"
    assert services["app"]["deploy"]["replicas"] >= 2


def test_instances_trust_exactly_nginx(compose):
    services = compose["services"]
    nginx_address = ipaddress.ip_address(services["nginx"]["networks"]["backend"]["ipv4_address"])
    subnet = ipaddress.ip_network(compose["networks"]["backend"]["ipam"]["config"][0]["subnet"])
    assert nginx_address in subnet
    for name in IMAGE_SERVICES:
        trusted = services[name]["environment"]["YYAI_TRUSTED_PROXIES"]
        assert [ipaddress.ip_network(t.strip()) for t in trusted.split(",")] == [ipaddress.ip_network(nginx_address)]


def test_migrations_run_once_before_the_instances(compose):
    services = compose["services"]
    init = " ".join(services["init"]["command"])
    assert "manage.py migrate" in init and "manage.py ensure_admin" in init
    for name in ("app", "grpc"):
        assert services[name]["environment"]["YYAI_MIGRATE"] == "0"
        assert services[name]["depends_on"]["init"]["condition"] == "service_completed_successfully"
    assert services["init"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert all("models:/models" in services[name]["volumes"] for name in IMAGE_SERVICES)


def test_grpc_reachable(compose):
    grpc = compose["services"]["grpc"]
    command = grpc["command"]
    assert command[:3] == ["python", "manage.py", "grpcserve"]
    host, port = command[command.index("--host") + 1], command[command.index("--port") + 1]
    assert host == "0.0.0.0", "bound inside the container only"
    assert f"{port}:{port}" in grpc["ports"]
    assert re.search(rf"^EXPOSE .*\b{port}\b", (ROOT / "Dockerfile").read_text(), re.M)
    assert grpc["healthcheck"]["test"][-2:] == ["--tcp", port]


def test_app_environment_loads_and_serves_plain_http(compose, tmp_path):
    """The real settings, with exactly the app's environment (plus a data folder): no redirect, hosts accepted."""
    env = {k: str(v) for k, v in compose["services"]["app"]["environment"].items()}
    env.pop("DATABASE_URL")  # no database is opened by reading settings; keep the check offline
    code = (
        "import json, aiserver.settings as s; print(json.dumps({'redirect': s.SECURE_SSL_REDIRECT, "
        "'hosts': s.ALLOWED_HOSTS, 'proxies': [str(n) for n in s.TRUSTED_PROXY_NETWORKS], 'debug': s.DEBUG}))"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "YYAI_"))}
    env["YYAI_DATA_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, env={**clean, **env}
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == {
        "redirect": False,
        "hosts": ["localhost", "127.0.0.1"],
        "proxies": ["172.30.0.10/32"],
        "debug": False,
    }
