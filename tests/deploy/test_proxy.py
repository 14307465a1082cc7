"""aiserver.proxy: forwarded headers believed from trusted peers only, and never passed on."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aiserver.proxy import TrustedProxies, client_address, is_trusted, parse_networks

ROOT = Path(__file__).resolve().parents[2]
PROXIES = parse_networks(["10.0.0.0/8", "127.0.0.1", "fd00::/8"])


def run(scope: dict, networks=PROXIES) -> dict:
    """The scope the inner app receives."""
    seen = {}

    async def inner(scope, receive, send):
        seen.update(scope)

    asyncio.run(TrustedProxies(inner, networks)(scope, None, None))
    return seen


def http(peer: str, *headers: tuple[bytes, bytes], scheme: str = "http") -> dict:
    return {
        "type": "http",
        "scheme": scheme,
        "client": (peer, 51000),
        "headers": [(b"host", b"models.example.com"), *headers],
    }


SPOOF = ((b"x-forwarded-proto", b"https"), (b"x-forwarded-for", b"6.6.6.6"))


def test_untrusted_peer_headers_ignored_and_removed():
    scope = run(http("203.0.113.9", *SPOOF))
    assert scope["scheme"] == "http" and scope["client"] == ("203.0.113.9", 51000)
    assert scope["headers"] == [(b"host", b"models.example.com")]


def test_trusted_peer_sets_scheme_and_client():
    scope = run(http("10.1.2.3", (b"x-forwarded-proto", b"https"), (b"x-forwarded-for", b"198.51.100.7")))
    assert scope["scheme"] == "https" and scope["client"] == ("198.51.100.7", 0)
    assert scope["headers"] == [(b"host", b"models.example.com")]


def test_client_claims_left_of_the_first_untrusted_hop_are_ignored():
    # the client sent "6.6.6.6"; the edge proxy appended the address it saw, an inner proxy appended the edge's
    chain = (b"x-forwarded-for", b"6.6.6.6, 198.51.100.7, 10.0.0.5")
    assert run(http("10.1.2.3", chain))["client"] == ("198.51.100.7", 0)
    # several header lines read as one chain, in order
    lines = ((b"x-forwarded-for", b"6.6.6.6"), (b"x-forwarded-for", b"198.51.100.7"))
    assert run(http("10.1.2.3", *lines))["client"] == ("198.51.100.7", 0)


def test_no_trusted_proxies_by_default():
    scope = run(http("127.0.0.1", *SPOOF), networks=parse_networks([]))
    assert scope["scheme"] == "http" and scope["client"] == ("127.0.0.1", 51000)
    assert [name for name, _ in scope["headers"]] == [b"host"]


@pytest.mark.parametrize("proto", [b"ftp", b"https, http", b""])
def test_unknown_scheme_ignored(proto):
    assert run(http("10.1.2.3", (b"x-forwarded-proto", proto)))["scheme"] == "http"


def test_unreadable_chain_not_believed():
    assert run(http("10.1.2.3", (b"x-forwarded-for", b"6.6.6.6, not-an-ip")))["client"] == ("10.1.2.3", 51000)
    assert client_address("", PROXIES) is None


def test_chain_of_trusted_hops_gives_the_leftmost():
    assert client_address("10.9.9.9, 10.0.0.5", PROXIES) == "10.9.9.9"


def test_addresses_and_networks():
    assert is_trusted("::ffff:127.0.0.1", PROXIES) and is_trusted("fd12::1", PROXIES)
    assert not is_trusted("127.0.0.2", PROXIES) and not is_trusted("unix:/run/x.sock", PROXIES)
    with pytest.raises(ValueError, match="'10.0.0.0/33'"):
        parse_networks(["10.0.0.0/33"])


def test_scope_without_forwarded_headers_untouched():
    scope = http("10.1.2.3")
    assert TrustedProxies(None, PROXIES).rewrite(scope) is scope


def settings_error(data_dir: Path, **env) -> str:
    done = subprocess.run(
        [sys.executable, "-c", "import aiserver.settings"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "YYAI_DATA_DIR": str(data_dir), "DJANGO_SECRET_KEY": "k" * 50, **env},
        timeout=60,
    )
    return done.stderr


def test_settings_refuse_the_old_unconditional_switch(tmp_path):
    assert "YYAI_TRUSTED_PROXIES" in settings_error(tmp_path, DJANGO_BEHIND_TLS_PROXY="1")
    assert "'10.0.0.300'" in settings_error(tmp_path, YYAI_TRUSTED_PROXIES="10.0.0.300")
    assert settings_error(tmp_path, YYAI_TRUSTED_PROXIES="10.0.0.0/8, 127.0.0.1") == ""
