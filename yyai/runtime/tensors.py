"""Caller values -> arrays that fit a signature's inputs, with errors that name the input.

A request carries, per input name, either rows (one value per row: JSON
``instances``, a list of images) or a columnar tensor (JSON ``inputs``, a KServe
or gRPC tensor: the batch dimension included when the signature has one). Each
is checked against the input's dtype and shape here, before anything joins a
batch, so a bad request can never fail other callers.

Casts are those that lose nothing: integers and floats to a float input,
integers to an integer input (range-checked), booleans to ``bool``, text or
bytes to ``string``. Anything else is :class:`BadTensor`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import BadTensor
from .signature import TensorSpec

MAX_RANK = 32  # no served tensor has more dimensions; TensorFlow's own limit is 254


class Rows(list):
    """One value per row for one input (``instances``, several images)."""


class EncodedImage(bytes):
    """Image file bytes (JPEG, PNG, ...) for an input: decoded for a numeric input, as-is for a string one."""


def coerce(value: Any, spec: TensorSpec, *, rows_first: bool, batched: bool = True) -> np.ndarray:
    """``value`` as an array of ``spec``'s dtype and shape (a leading row axis when ``rows_first``).

    ``batched=False``: the rows are whole tensors of an unbatched signature (for the error's words).
    """
    array = _as_array(value, spec)
    shape = array.shape[1:] if rows_first else array.shape
    if rows_first and array.ndim == 0:
        raise BadTensor(f"input '{spec.name}' must be a list with one entry per row, got a single value")
    if spec.shape is not None and (
        len(shape) != len(spec.shape) or any(want is not None and want != got for want, got in zip(spec.shape, shape))
    ):
        rows = " per row" if rows_first and batched else ""
        raise BadTensor(f"input '{spec.name}' takes shape {spec.shape_text()}{rows}, got {list(shape)}")
    return array


def _as_array(value: Any, spec: TensorSpec) -> np.ndarray:
    if spec.dtype == "string":
        return _strings(value, spec)
    try:
        array = value if isinstance(value, np.ndarray) else np.asarray(value)
    except (ValueError, TypeError):
        raise BadTensor(f"input '{spec.name}' is ragged: every row must have the same nested shape") from None
    if array.ndim > MAX_RANK:
        raise BadTensor(f"input '{spec.name}' has {array.ndim} dimensions; the limit is {MAX_RANK}")
    want = spec.numpy_dtype
    kind = array.dtype.kind
    if want.kind == "b":
        if kind != "b":
            raise BadTensor(f"input '{spec.name}' takes booleans (true/false), got {_kind_text(array)}")
        return array
    if kind not in "iuf" or (want.kind in "iu" and kind == "f"):
        expected = "numbers" if want.kind == "f" else "integers"
        raise BadTensor(f"input '{spec.name}' takes {expected} ({spec.dtype}), got {_kind_text(array)}")
    if want.kind in "iu" and array.size:
        info = np.iinfo(want)
        low, high = array.min(), array.max()
        if low < info.min or high > info.max:
            raise BadTensor(
                f"input '{spec.name}' takes {spec.dtype}; {low if low < info.min else high} is out of "
                f"its range [{info.min}, {info.max}]"
            )
    if array.dtype == want:
        return array
    with np.errstate(over="ignore", invalid="ignore"):
        cast = array.astype(want)
    if want.kind == "f" and not np.isfinite(cast).all():
        raise BadTensor(f"input '{spec.name}' holds NaN, infinity or a number too large for {spec.dtype}")
    return cast


def _strings(value: Any, spec: TensorSpec) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=object)
    except ValueError:
        raise BadTensor(f"input '{spec.name}' is ragged: every row must have the same nested shape") from None
    if array.ndim > MAX_RANK:
        raise BadTensor(f"input '{spec.name}' has {array.ndim} dimensions; the limit is {MAX_RANK}")
    flat = array.reshape(-1)
    for i, item in enumerate(flat):
        if isinstance(item, str):
            flat[i] = item.encode()
        elif not isinstance(item, bytes):
            raise BadTensor(f"input '{spec.name}' takes strings, got {type(item).__name__}")
    return array


def _kind_text(array: np.ndarray) -> str:
    return {"b": "booleans", "i": "integers", "u": "integers", "f": "floats", "U": "strings", "S": "bytes"}.get(
        array.dtype.kind, "values that are not all numbers (strings, nulls or objects)"
    )


def group_rows(columns: dict[str, np.ndarray | list[np.ndarray]], rows: int) -> list[tuple[list[int], dict]]:
    """Split rows into groups whose inputs share one shape each: ``[(row indices, {name: stacked rows})]``.

    ``columns`` holds, per input, an array with a leading row axis (every row one
    shape) or a list of per-row arrays (rows may differ: images at their own size).
    """
    if not any(isinstance(c, list) for c in columns.values()):  # arrays (or feed.Scaled): one shape per column
        return [(list(range(rows)), columns)]
    groups: dict[tuple, list[int]] = {}
    for row in range(rows):
        groups.setdefault(tuple(np.shape(c[row]) for c in columns.values()), []).append(row)
    return [(indices, {name: _stack(c, indices) for name, c in columns.items()}) for indices in groups.values()]


def _stack(column: np.ndarray | list[np.ndarray], indices: list[int]) -> np.ndarray:
    if not isinstance(column, list):
        return column[indices] if len(indices) != len(column) else column
    return np.stack([column[i] for i in indices])


def row_count(name: str, value: np.ndarray | list, counts: dict[str, int]) -> None:
    """Record how many rows input ``name`` brought; BadTensor when inputs disagree."""
    counts[name] = len(value)
    if len(set(counts.values())) > 1:
        raise BadTensor(
            "the inputs have different numbers of rows: " + ", ".join(f"'{k}' {v}" for k, v in counts.items())
        )
