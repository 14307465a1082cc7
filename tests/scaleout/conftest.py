"""Fixtures for multi-process and multi-host tests: a model store and a PostgreSQL database."""

import contextlib
import os
import uuid

import pytest

from tests import modelkit

PG_ADMIN_URL = os.environ.get("YYAI_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def flat_store(tmp_path):
    """A store with one flat app 'calc' whose single model outputs 1.0 * sum(x)."""
    store = tmp_path / "store"
    modelkit.regressor(store / "calc" / "m.h5", weight=1.0)
    return store


@pytest.fixture
def postgres_url():
    """A fresh PostgreSQL database, dropped afterwards (see :func:`fresh_database`)."""
    with fresh_database() as url:
        yield url


@contextlib.contextmanager
def fresh_database():
    """A fresh PostgreSQL database, dropped afterwards.

    Skipped with the reason when no server answers; with YYAI_REQUIRE_POSTGRES=1
    (set by .ci/run) that is a failure instead, so CI cannot pass by skipping.
    """
    import psycopg

    name = f"aiserver_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if os.environ.get("YYAI_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required here but not reachable at {PG_ADMIN_URL}: {exc}")
        pytest.skip(f"no PostgreSQL at {PG_ADMIN_URL} ({exc}); set YYAI_TEST_POSTGRES to point at one")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
