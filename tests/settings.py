"""Test settings: the real settings, read with a test environment (plain HTTP, private data folder)."""
import os
import tempfile

os.environ.setdefault("DJANGO_HTTPS", "0")
os.environ.setdefault("YYAI_DATA_DIR", tempfile.mkdtemp(prefix="aiserver-test-data-"))

from aiserver.settings import *  # noqa: E402,F401,F403
