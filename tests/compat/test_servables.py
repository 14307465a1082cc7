"""Model names and version numbers shared by every protocol."""
import pytest

from yyai.compat.servables import parse_name, unique_names, version_number


@pytest.mark.parametrize("name, app, model", [("calc", "calc", None), ("calc.a", "calc", "a"),
                                              ("calc.a.h5", "calc", "a.h5")])
def test_parse_name(name, app, model):
    target = parse_name(name)
    assert (target.app, target.model) == (app, model)


def test_output_names_are_stems_unless_two_models_share_one():
    assert unique_names(["a.h5", "b.keras", "saved"]) == ["a", "b", "saved"]
    assert unique_names(["a.h5", "a.keras", "c.h5"]) == ["a.h5", "a.keras", "c"]


def test_version_numbers():
    assert version_number("3") == 3
    assert version_number("8c36ca03cc1e") == 0x8C36CA03CC1E < 2**63
