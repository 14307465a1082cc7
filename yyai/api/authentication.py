"""HTTP basic authentication that answers 429 when failed logins locked the user or the client out (yyai.auth)."""

from __future__ import annotations

from rest_framework import authentication
from rest_framework.exceptions import AuthenticationFailed, Throttled

from yyai.auth import lockout_of

LOCKED_OUT = "too many failed logins for this user or from this address."


def raise_if_locked_out(request) -> None:
    """Throttled (429, Retry-After) when this request's login was refused by the lockout."""
    wait = lockout_of(request)
    if wait is not None:
        raise Throttled(wait, detail=LOCKED_OUT)


class BasicAuthentication(authentication.BasicAuthentication):
    """DRF's basic authentication; a locked-out attempt is 429, not 401."""

    def authenticate_credentials(self, userid, password, request=None):
        try:
            return super().authenticate_credentials(userid, password, request)
        except AuthenticationFailed:
            raise_if_locked_out(request)
            raise
