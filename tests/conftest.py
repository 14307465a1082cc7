"""Suite-wide fixtures."""
import pytest


@pytest.fixture(autouse=True)
def _fresh_throttle_counters():
    """Throttle counters live in the cache; one test's requests must not count against the next's limits."""
    from django.core.cache import cache

    cache.clear()
    yield
