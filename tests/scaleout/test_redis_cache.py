"""With REDIS_URL, throttle counters live in Redis: two processes count against one limit."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REDIS_URL = os.environ.get("YYAI_TEST_REDIS", "redis://127.0.0.1:6379/15")
ROOT = Path(__file__).resolve().parents[2]
COUNT_ONCE = """
from django.core.cache import caches
cache = caches["default"]
key = "throttle_test_{tag}"
history = cache.get(key, [])
history.append(1)
cache.set(key, history, 60)
print(cache.__class__.__name__, len(cache.get(key)))
"""


@pytest.fixture
def redis_url():
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.skip(f"no Redis at {REDIS_URL} ({exc}); set YYAI_TEST_REDIS to point at one")
    return REDIS_URL


def test_two_processes_share_the_cache(redis_url, tmp_path):
    tag = uuid.uuid4().hex
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "aiserver.settings",
        "REDIS_URL": redis_url,
        "YYAI_DATA_DIR": str(tmp_path),
    }
    outputs = [
        subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", COUNT_ONCE.format(tag=tag)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout.split()[-2:]
        for _ in range(2)
    ]
    assert outputs == [["RedisCache", "1"], ["RedisCache", "2"]]
