"""Failed logins, throttled per username and per client address, on every way in.

Every password check goes through Django's ``authenticate()``: the token
endpoint, HTTP basic authentication, the admin and the browsable API's login.
So the guard sits there:

* :func:`count_failure` (on ``user_login_failed``) counts failures per username
  and per client address in the cache (shared by every worker and host when
  ``REDIS_URL`` is set), each for ``YYAI_LOGIN_WINDOW_SECONDS``;
* :class:`LockoutBackend`, first in ``AUTHENTICATION_BACKENDS``, refuses every
  attempt, right or wrong, for a username with ``YYAI_LOGIN_FAILURES_PER_USER``
  failures in the window, or from an address with
  ``YYAI_LOGIN_FAILURES_PER_CLIENT``; no password is even hashed then. The API
  answers those attempts 429 with ``Retry-After`` (:func:`lockout_of`).

The client address is ``REMOTE_ADDR``: forwarded headers are believed only
from ``YYAI_TRUSTED_PROXIES`` (aiserver/proxy.py).
"""

from __future__ import annotations

import hashlib
import time

from django.contrib.auth.backends import BaseBackend, ModelBackend
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver

from yyai.conf import yyai_settings

LOCKED_ATTRIBUTE = "_yyai_login_locked_for"


def client_of(request) -> str:
    meta = getattr(request, "META", None) or {}
    return meta.get("REMOTE_ADDR", "") or "unknown"


def _keys(username: str | None, client: str) -> list[tuple[str, int]]:
    keys = [(f"yyai:login:client:{client}", yyai_settings.LOGIN_FAILURES_PER_CLIENT)]
    if username:
        digest = hashlib.sha256(username.lower().encode()).hexdigest()[:32]
        keys.append((f"yyai:login:user:{digest}", yyai_settings.LOGIN_FAILURES_PER_USER))
    return keys


def locked_for(username: str | None, client: str) -> float | None:
    """Seconds until ``username`` may try again from ``client``; None when it may now."""
    now = time.time()
    waits = []
    for key, limit in _keys(username, client):
        entry = cache.get(key)
        if entry and entry[0] >= limit:
            waits.append(max(1.0, entry[1] - now))
    return max(waits) if waits else None


@receiver(user_login_failed)
def count_failure(sender, credentials, request=None, **kwargs) -> None:
    """One more failure for the username and the client address (each window starts at its first failure)."""
    window = yyai_settings.LOGIN_WINDOW_SECONDS
    now = time.time()
    for key, _ in _keys(credentials.get("username"), client_of(request)):
        count, until = cache.get(key) or (0, now + window)
        cache.set(key, (count + 1, until), timeout=max(1, int(until - now)))


@receiver(user_logged_in)
def forget_failures(sender, request, user, **kwargs) -> None:
    """A successful login clears its username's failures (not its address's)."""
    for key, _ in _keys(user.get_username(), client_of(request))[1:]:
        cache.delete(key)


class LockoutBackend(BaseBackend):
    """Refuses every attempt of a locked-out username or address (see the module docstring)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        wait = locked_for(username, client_of(request))
        if wait is not None:
            if request is not None:
                setattr(getattr(request, "_request", request), LOCKED_ATTRIBUTE, wait)
            raise PermissionDenied("too many failed logins")  # stops authenticate(): no password is checked
        return None

    def get_user(self, user_id):
        """Sessions that name this backend (it comes first: ``login()`` without one picks it) find their user."""
        return ModelBackend().get_user(user_id)


def lockout_of(request) -> float | None:
    """Seconds to wait when this request's login attempt was refused by the lockout, else None."""
    return getattr(getattr(request, "_request", request), LOCKED_ATTRIBUTE, None)
