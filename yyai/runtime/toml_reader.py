"""Typed reads of a parsed TOML table (a manifest's), each failure a ManifestError naming the file and key."""

from __future__ import annotations

from typing import Any

from .errors import ManifestError


class TableReader:
    """Typed access to the raw TOML tables, failing with the file and key."""

    def __init__(self, raw: dict[str, Any], source: str):
        self.raw = raw
        self.source = source

    def fail(self, key: str, reason: str):
        raise ManifestError(f"{self.source}: key '{key}' {reason}")

    def table(self, name: str | None, allowed: set[str]) -> dict[str, Any]:
        table = self.raw if name is None else self.raw.get(name, {})
        if not isinstance(table, dict):
            self.fail(name, "must be a table")
        unknown = sorted(set(table) - allowed)
        if unknown:
            prefix = f"{name}." if name else ""
            self.fail(prefix + unknown[0], f"is unknown (allowed: {', '.join(sorted(allowed))})")
        return table

    def get(self, table: dict[str, Any], key: str, kind: type, default: Any) -> Any:
        value = table.get(key.rsplit(".", 1)[-1], default)
        if value is default:
            return value
        # bool is a subclass of int in Python; TOML keeps them apart, so do we.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.fail(key, f"must be of type {kind.__name__}, got {type(value).__name__}")
        return value

    def number(self, table: dict[str, Any], key: str, default: float | None) -> float | None:
        value = table.get(key.rsplit(".", 1)[-1], default)
        if value is default:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(key, f"must be a number, got {type(value).__name__}")
        if value != value or value in (float("inf"), float("-inf")):
            self.fail(key, "must be a finite number")
        return float(value)

    def choice(self, table: dict[str, Any], key: str, choices: tuple[str, ...], default: str | None) -> str | None:
        value = self.get(table, key, str, default)
        if value is not None and value not in choices:
            self.fail(key, f"must be one of {', '.join(choices)}, got '{value}'")
        return value

    def positive(self, table: dict[str, Any], key: str, default: int, maximum: int, allow_zero: bool = False) -> int:
        value = self.get(table, key, int, default)
        low = 0 if allow_zero else 1
        if not low <= value <= maximum:
            self.fail(key, f"must be between {low} and {maximum}, got {value}")
        return value
