"""Forwarded headers, believed only from the proxies listed in ``YYAI_TRUSTED_PROXIES``.

:class:`TrustedProxies` is the outermost ASGI app (``aiserver/asgi.py``). When
the peer that opened the connection is a trusted proxy (an address inside one of
the configured networks):

* ``scope["scheme"]`` becomes the ``X-Forwarded-Proto`` value (``http`` or
  ``https``; anything else is ignored), so Django's ``request.is_secure()``, the
  HTTPS redirect, secure cookies and the fast path's HSTS header follow the
  scheme the client really used;
* ``scope["client"]`` becomes the client address: the rightmost address of
  ``X-Forwarded-For`` that is not itself a trusted proxy (each proxy appends
  the address it saw, so everything left of that is the client's own claim).

Then, trusted or not, both headers are removed from the request, so nothing
behind (Django's ``REMOTE_ADDR``, DRF's throttle identity, which prefers
``X-Forwarded-For`` whenever it is present, the access log) can read a value a
client wrote. With no trusted proxies (the default) every request is taken at
face value: the connection's own address and scheme.

This replaces uvicorn's own proxy-header handling, which trusts ``127.0.0.1``
by default and leaves the headers in place (turned off in ``aiserver/workers.py``).
"""

from __future__ import annotations

import ipaddress
from typing import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

FORWARDED_FOR = b"x-forwarded-for"
FORWARDED_PROTO = b"x-forwarded-proto"
SCHEMES = {"http", "https"}


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """CIDRs or single addresses (``10.0.0.0/8``, ``127.0.0.1``, ``::1``); a bad entry raises ValueError naming it."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"YYAI_TRUSTED_PROXIES: {entry!r} is not an IP address or network") from None
    return tuple(networks)


def is_trusted(address: str, networks: tuple[Network, ...]) -> bool:
    """Whether ``address`` (an IP, maybe IPv4-mapped IPv6) lies in one of ``networks``; False for anything else."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


def client_address(forwarded_for: str, networks: tuple[Network, ...]) -> str | None:
    """The rightmost address in an ``X-Forwarded-For`` chain that is not a trusted proxy.

    None when the chain is empty or holds a value that is not an address (a
    chain that cannot be read is not believed at all). When every hop is a
    trusted proxy, the leftmost one.
    """
    hops = [hop.strip() for hop in forwarded_for.split(",")]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return None
        if not is_trusted(hop, networks):
            return hop
    return hops[0] if hops and hops[0] else None


class TrustedProxies:
    """ASGI: rewrite scheme and client from the forwarded headers of trusted peers; strip those headers always."""

    def __init__(self, app, networks: tuple[Network, ...]):
        self.app = app
        self.networks = networks

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = self.rewrite(scope)
        await self.app(scope, receive, send)

    def rewrite(self, scope: dict) -> dict:
        """``scope`` itself without forwarded headers, else a copy with them applied (if trusted) and removed."""
        headers = scope.get("headers") or []
        if not any(name in (FORWARDED_FOR, FORWARDED_PROTO) for name, _ in headers):
            return scope
        kept, forwarded_for, proto = [], [], None
        for name, value in headers:
            if name == FORWARDED_FOR:
                forwarded_for.append(value.decode("latin-1"))
            elif name == FORWARDED_PROTO:
                proto = value.decode("latin-1").strip().lower()
            else:
                kept.append((name, value))
        scope = {**scope, "headers": kept}
        peer = (scope.get("client") or ("", 0))[0]
        if not self.networks or not is_trusted(peer, self.networks):
            return scope
        if proto in SCHEMES:
            scope["scheme"] = proto if scope["type"] == "http" else proto.replace("http", "ws")
        if forwarded_for:
            client = client_address(",".join(forwarded_for), self.networks)
            if client is not None:
                scope["client"] = (client, 0)
        return scope
