"""Compat fixtures: the API's model store (calc: a.h5 w=1 + b.keras w=2; cls: 3 classes) plus a numbered app."""

import numpy as np
import pytest

from tests import modelkit
from yyai.fleet.process_registry import get_registry

ONES = np.ones((1, *modelkit.SHAPE), np.float32)  # calc.a -> 64, calc.b -> 128


def write_version(root, number: int, weight: float):
    """``num/<number>/m.h5`` (weight ``weight``), complete at once (READY marker)."""
    folder = root / "num" / str(number)
    modelkit.regressor(folder / "m.h5", weight=weight)
    (folder / "READY").touch()
    return folder


@pytest.fixture
def numbered(store):
    """App ``num`` in the numbered layout, version 1 (m.h5, weight 1) loaded; returns the store root."""
    write_version(store, 1, 1.0)
    get_registry().get("num").load()
    return store
