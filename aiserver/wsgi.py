"""WSGI entry point. Models are not loaded here: gunicorn loads them after fork (gunicorn.conf.py)."""

import os

from django.core.wsgi import get_wsgi_application

from aiserver import bootstrap

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aiserver.settings")
bootstrap.prepare()
application = get_wsgi_application()
