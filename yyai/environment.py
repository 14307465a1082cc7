"""Typed reads of environment variable values: the project's settings, yyai.conf and gunicorn's configuration.

Each parser takes the raw text and returns the value, or raises ValueError in
words a person can act on; the caller names the variable.
"""

from __future__ import annotations

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value not in _TRUE | _FALSE:
        raise ValueError("is not a boolean (use 1/0, true/false)")
    return value in _TRUE


def parse_int(raw: str, *, minimum: int = 0) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError("is not an integer") from None
    if value < minimum:
        raise ValueError(f"must be >= {minimum}")
    return value


def parse_float(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError("is not a number") from None


def parse_list(raw: str) -> list[str]:
    """Comma-separated items, blanks dropped."""
    return [item.strip() for item in raw.split(",") if item.strip()]
