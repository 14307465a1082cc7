"""Container health check: exit 0 when this container's server answers, else 1.

``python deploy/healthcheck.py``: ``GET /healthz`` on ``127.0.0.1:$PORT`` must
answer 200. The request names a host Django accepts (the first of
``DJANGO_ALLOWED_HOSTS``; ``localhost`` by default), else Django would refuse
it with 400. ``python deploy/healthcheck.py --tcp 8500``: the port accepts
connections (the gRPC server).
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.error
import urllib.request


def host_header(allowed_hosts: str) -> str:
    """A Host value that DJANGO_ALLOWED_HOSTS admits (``*`` and ``.example.com`` patterns included)."""
    for entry in (item.strip() for item in allowed_hosts.split(",")):
        if entry == "*":
            return "localhost"
        if entry:
            return entry.lstrip(".")
    return "localhost"


def http_ok(port: int, host: str, timeout: float = 4.0) -> bool:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/healthz", headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def tcp_ok(port: int, timeout: float = 4.0) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def main(argv: list[str]) -> int:
    if argv[:1] == ["--tcp"]:
        return 0 if tcp_ok(int(argv[1])) else 1
    host = host_header(os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost"))
    return 0 if http_ok(int(os.environ.get("PORT", "8000")), host) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
