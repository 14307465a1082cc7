"""Typed reads of environment variables, for the project's settings and the gunicorn configuration."""

from __future__ import annotations

import os

from yyai.environment import parse_bool, parse_float, parse_int, parse_list


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    return default if raw is None else _read(name, raw, parse_bool)


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    return default if raw is None or not raw.strip() else _read(name, raw, lambda r: parse_int(r, minimum=minimum))


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return default if raw is None or not raw.strip() else _read(name, raw, parse_float)


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    return default if raw is None else parse_list(raw)


def _read(name: str, raw: str, parse):
    try:
        return parse(raw)
    except ValueError as exc:
        raise ValueError(f"environment variable {name}={raw!r} {exc}") from None
