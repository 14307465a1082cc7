"""A handler's answer as JSON can carry it: numpy arrays and scalars become lists and numbers, anything else
JSON cannot hold is refused with its place in the answer."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

MAX_ANSWER_DEPTH = 64


def jsonable(value: Any, where: str = "answer", depth: int = 0) -> Any:
    """``value`` with numpy arrays and scalars as lists and numbers; ValueError naming the place of anything
    JSON cannot carry (another type, a non-string key, NaN or infinity, nesting deeper than 64)."""
    if depth > MAX_ANSWER_DEPTH:
        raise ValueError(f"{where} is nested deeper than {MAX_ANSWER_DEPTH}")
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} is {value}")
        return value
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise ValueError(f"{where} has a key that is not a string")
        return {key: jsonable(item, f"{where}.{key}", depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
    raise ValueError(f"{where} is a {type(value).__name__}")
