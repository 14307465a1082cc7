"""What the server needs on disk before Django starts: the data folder and a stable secret key.

Importing settings writes nothing; every entry point calls :func:`prepare`
first instead: ``manage.py``, gunicorn's master (``on_starting``) and the
WSGI/ASGI modules. It creates ``YYAI_DATA_DIR`` (the SQLite database, the
collected static files, Prometheus' files) and, unless
``DJANGO_SECRET_KEY`` is set, ``<data>/secret_key`` (0600), so that every
worker and restart signs sessions with the same key.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY_FILE = "secret_key"


def data_dir() -> Path:
    """``YYAI_DATA_DIR``, else ``./data`` of the project."""
    return Path(os.environ.get("YYAI_DATA_DIR") or BASE_DIR / "data").resolve()


def prepare() -> Path:
    """Create the data folder (and the secret key file when no DJANGO_SECRET_KEY is given); returns the folder."""
    folder = data_dir()
    (folder / "static").mkdir(parents=True, exist_ok=True)
    key = folder / SECRET_KEY_FILE
    if not os.environ.get("DJANGO_SECRET_KEY") and not key.exists():
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
    return folder
