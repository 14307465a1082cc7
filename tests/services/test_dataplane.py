"""yyai.services.dataplane without HTTP: what every protocol's codec relies on."""

import numpy as np
import pytest

from yyai.runtime.errors import AppNotFound, InputError, VersionNotFound
from yyai.services import addressing, dataplane
from yyai.services.dataplane import InferRequest

pytestmark = pytest.mark.django_db


def test_infer_names_the_outputs_of_one_model(store):
    rows = np.ones((3, 8, 8, 1), np.float32)
    result = dataplane.infer(InferRequest(address="calc.b", inputs={"pixels": rows}))
    assert result.rows == 3 and list(result.tensors()) == ["y"]
    assert result.tensors()["y"].shape == (3, 1)


def test_targets_versions_and_inputs_are_checked(store):
    with pytest.raises(AppNotFound):
        dataplane.infer(InferRequest(address="nope", inputs=np.ones((1, 8, 8, 1), np.float32)))
    with pytest.raises(VersionNotFound):
        dataplane.infer(InferRequest(address="calc", inputs={"pixels": np.ones((1, 8, 8, 1))}, version=999))
    with pytest.raises(InputError):
        dataplane.infer(InferRequest(address="calc", inputs={"pixels": np.ones((1, 8, 8, 1)), "nope": [1]}))


def test_parse_target():
    assert addressing.parse_address("calc") == addressing.Address(name="calc", app="calc")
    assert addressing.parse_address("calc.b.keras") == addressing.Address(
        name="calc.b.keras", app="calc", model="b.keras"
    )


def test_readiness_lists_every_app(store):
    assert dataplane.readiness() == {"calc": "AVAILABLE", "cls": "AVAILABLE"}
    assert dataplane.server_ready() and addressing.model_ready(addressing.parse_address("calc"))
