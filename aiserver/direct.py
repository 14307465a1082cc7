"""Predicts the HTTP protocol answers itself, without the ASGI stack (``aiserver/protocol.py``).

A predict request the fast path takes (:meth:`yyai.http.fastpath.FastPredict.claim`) needs nothing of the ASGI
stack but what the protocol can do itself: the trusted proxies' headers are settled here as
:class:`aiserver.proxy.TrustedProxies` settles them, the body is the one the protocol gathers (within the same
deadline as :class:`yyai.http.front.Front`'s), the answer is written in one piece and the last-resort 500 is the
same. Skipped: the ASGI task's body handshake, three ASGI layers and uvicorn's checks of each header written
(12-15 us of the event loop's 180-310 per request on workloads a and b; bench/NOTES.md, "Session 10").

Anything the fast path gives back (a body DRF's parsers refuse, an app gone on standby) is answered by
``fallback``, the ASGI stack without the fast path, with the body already read. With traces on, every request
takes the ASGI stack.
"""

from __future__ import annotations

from aiserver.proxy import TrustedProxies
from yyai import tracing
from yyai.conf import yyai_settings
from yyai.http.fastpath import Claim, FastPredict, Respond


class DirectPredict:
    """What :class:`aiserver.protocol.LimitedHttpToolsProtocol` answers without ASGI, and how."""

    def __init__(self, fast: FastPredict, proxies: TrustedProxies, fallback):
        self.fast, self.proxies, self.fallback = fast, proxies, fallback

    def claim(self, scope: dict) -> Claim | None:
        """The fast path's claim on this request (trusted proxies' headers applied), None for the ASGI stack."""
        if scope["method"] != "POST" or not self.fast.enabled or tracing.ON:
            return None
        return self.fast.claim(self.proxies.rewrite(scope))

    @property
    def body_seconds(self) -> float:
        """The body's deadline (``YYAI_BODY_TIMEOUT_SECONDS``), as the ASGI front has it."""
        return yyai_settings.BODY_TIMEOUT_SECONDS

    async def answer(self, claim: Claim, body: bytes, respond: Respond) -> bool:
        """:meth:`yyai.http.fastpath.FastPredict.answer`: False when ``fallback`` must answer."""
        return await self.fast.answer(claim, body, respond)


class WithDirect:
    """An ASGI app that also names the predicts the protocol answers itself (``direct``; None: none)."""

    def __init__(self, app, direct: DirectPredict | None):
        self.app, self.direct = app, direct

    async def __call__(self, scope: dict, receive, send) -> None:  # a coroutine function: uvicorn's ASGI 3 test
        await self.app(scope, receive, send)
