"""Fixtures: model apps in tmp folders built from real tiny Keras models."""

import pytest

from tests import modelkit


@pytest.fixture
def make_app(tmp_path):
    """Create ``tmp/store/<name>/`` with regressors ``{file: weight}``; returns the app folder."""

    def make(name="app", models=None, manifest=None):
        app = tmp_path / "store" / name
        app.mkdir(parents=True, exist_ok=True)
        for file, weight in (models or {"m.h5": 1.0}).items():
            modelkit.regressor(app / file, weight=weight)
        if manifest is not None:
            (app / "app.toml").write_text(manifest)
        return app

    return make
