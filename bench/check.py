"""Does a peer answer what aiserver answers? Compared field by field, numbers to 2 decimals.

An answer is aiserver's ``predictions``: per row, one result dict per model. A
peer's result may leave out fields of ours (its format is its own) but every
field it gives must match, and it must give each model's numbers.
"""

from __future__ import annotations

DECIMALS = 2


def difference(expected: list[list[dict]], got) -> str | None:
    """None when ``got`` matches ``expected``; else where it first differs."""
    if not isinstance(got, list) or len(got) != len(expected):
        return f"expected {len(expected)} rows, got {_short(got)}"
    for row, (mine, theirs) in enumerate(zip(expected, got)):
        if not isinstance(theirs, list) or len(theirs) != len(mine):
            return f"row {row}: expected {len(mine)} results, got {_short(theirs)}"
        for index, (a, b) in enumerate(zip(mine, theirs)):
            if not isinstance(b, dict) or not b:
                return f"row {row} result {index}: got {_short(b)}"
            for key, value in b.items():
                if key in a and _rounded(a[key]) != _rounded(value):
                    return f"row {row} result {index} {key}: expected {_short(a[key])}, got {_short(value)}"
            if not any(key in a for key in b):
                return f"row {row} result {index}: no field in common with {sorted(a)}: {_short(b)}"
    return None


def _rounded(value):
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return round(float(value), DECIMALS)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."
