"""ASGI entry point, the one gunicorn serves (aiserver/gunicorn.conf.py, uvicorn workers).

Predict requests (JSON or multipart) are answered on the event loop by :class:`yyai.fastpath.FastPredict`;
every other request runs Django's WSGI handler in a pool of ``GUNICORN_THREADS``
threads (a2wsgi), so a slow view (a reload, an upload) never blocks the loop or
the other requests. Models are not loaded here: gunicorn loads them after fork.
"""
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aiserver.settings")

from a2wsgi import WSGIMiddleware  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

from aiserver.env import env_int  # noqa: E402

django_wsgi = get_wsgi_application()  # sets Django up: yyai.fastpath imports models and reads settings

from yyai.fastpath import FastPredict  # noqa: E402

application = FastPredict(WSGIMiddleware(django_wsgi, workers=env_int("GUNICORN_THREADS", 16, minimum=1)))
