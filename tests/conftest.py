"""Suite-wide fixtures."""
import pytest
from django.test import override_settings


class YyaiOverrides:
    """``yyai.MAX_BODY_BYTES = 1024`` in a test: settings.YYAI changed for that test only (pytest-django)."""

    def __init__(self, settings):
        object.__setattr__(self, "_settings", settings)

    def __setattr__(self, name: str, value) -> None:
        self._settings.YYAI = {**self._settings.YYAI, name: value}


@pytest.fixture
def yyai(settings) -> YyaiOverrides:
    return YyaiOverrides(settings)


@pytest.fixture(autouse=True)
def _fresh_throttle_counters():
    """Throttle counters live in the cache; one test's requests must not count against the next's limits."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture(scope="module")
def zoo_store(tmp_path_factory, django_db_blocker):
    """A model store of every model shape (tests/zoo.py), served by this process's registry, per module."""
    from django.conf import settings

    from tests import zoo
    from yyai import process_registry, startup

    root = zoo.build_store(tmp_path_factory.mktemp("zoo") / "model_store")
    with override_settings(YYAI={**settings.YYAI, "MODEL_STORE": root}), django_db_blocker.unblock():
        process_registry.reset()
        startup.start()
        yield root
        process_registry.reset()
