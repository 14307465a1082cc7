"""Test settings: the real settings, read with a test environment (plain HTTP, private data folder)."""

import os
import tempfile

os.environ.setdefault("DJANGO_HTTPS", "0")
os.environ.setdefault("YYAI_SYNC_SECONDS", "0")  # tests drive GenerationWatcher.tick() themselves
os.environ.setdefault("YYAI_VALIDATE_ISOLATED", "0")  # the child-process path has its own tests
os.environ.setdefault("YYAI_DATA_DIR", tempfile.mkdtemp(prefix="aiserver-test-data-"))

from aiserver import bootstrap  # noqa: E402

bootstrap.prepare()  # as manage.py and gunicorn do: the data folder and its secret key
from aiserver.settings import *  # noqa: E402,F401,F403
