"""The registry: parallel start-up, failures isolated, apps added later, no Django."""

import subprocess
import sys

import numpy as np
import pytest

from tests import modelkit
from yyai.runtime.errors import AppNotFound
from yyai.runtime.registry import Registry, RegistryConfig


def test_loads_all_apps_and_isolates_a_broken_one(make_app, tmp_path):
    make_app("good", {"m.h5": 2.0})
    broken = make_app("broken", {"m.h5": 1.0})
    modelkit.random_bytes(broken / "m.h5")
    (tmp_path / "store" / ".hidden").mkdir()
    registry = Registry(RegistryConfig(store=tmp_path / "store"))
    timings = registry.load_all()
    assert set(timings) == {"good", "broken"}
    assert registry.get("good").state.value == "AVAILABLE"
    assert registry.get("broken").state.value == "FAILED"
    assert [u.name for u in registry.all()] == ["broken", "good"]


def test_unknown_and_invalid_names(tmp_path):
    registry = Registry(RegistryConfig(store=tmp_path / "created"))
    assert registry.names() == []
    assert (tmp_path / "created").is_dir(), "the registry creates the store it needs"
    for name in ("nope", "../etc", "", "a/b"):
        with pytest.raises(AppNotFound):
            registry.get(name)


def test_app_added_while_running(make_app, tmp_path):
    registry = Registry(RegistryConfig(store=tmp_path / "store"))
    registry.load_all()
    make_app("late", {"m.keras": 3.0})
    util = registry.get("late")
    util.reload()
    _, [out] = modelkit.predict(util, np.ones((1, *modelkit.SHAPE), np.float32))
    assert out.ravel().tolist() == pytest.approx([3.0 * 64])


def test_runtime_does_not_import_django():
    code = (
        "import sys, yyai.runtime.registry, yyai.runtime.model_util, yyai.runtime.batching; "
        "import yyai.runtime.preprocess, yyai.runtime.postprocess; "
        "sys.exit(1 if any(m == 'django' or m.startswith('django.') for m in sys.modules) else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
