"""ASGI entry point, the one gunicorn serves (aiserver/gunicorn.conf.py, uvicorn workers).

Predict requests (JSON or multipart) are answered on the event loop by :class:`yyai.http.fastpath.FastPredict`;
every other request runs Django's WSGI handler in a pool of ``GUNICORN_THREADS``
threads (a2wsgi), so a slow view (a reload, an upload) never blocks the loop or
the other requests. In front of both, :class:`yyai.http.front.Front` answers the
probes and reads every body whole, in bounds and in time; outermost,
:class:`aiserver.proxy.TrustedProxies` settles the client's scheme and address.
The predicts the fast path takes skip this stack: the HTTP protocol answers them
itself (``aiserver/direct.py``). Models are not loaded here: gunicorn loads them after fork.
"""

import os

from aiserver import bootstrap

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aiserver.settings")
bootstrap.prepare()

from a2wsgi import WSGIMiddleware  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

from aiserver.env import env_int  # noqa: E402
from aiserver.proxy import TrustedProxies  # noqa: E402

django_wsgi = get_wsgi_application()  # sets Django up: yyai.http.fastpath imports models and reads settings

from aiserver.direct import DirectPredict, WithDirect  # noqa: E402
from yyai.http.fastpath import FastPredict  # noqa: E402
from yyai.http.front import Front  # noqa: E402

django_asgi = WSGIMiddleware(django_wsgi, workers=env_int("GUNICORN_THREADS", 16, minimum=1))
fast = FastPredict(django_asgi)
# Outermost: forwarded headers are settled (believed from YYAI_TRUSTED_PROXIES only) and removed first.
stack = TrustedProxies(Front(fast), settings.TRUSTED_PROXY_NETWORKS)
# The predicts the fast path takes are answered by the HTTP protocol itself (aiserver/direct.py); what it gives
# back, by the same stack without it.
without_fast = TrustedProxies(Front(django_asgi), settings.TRUSTED_PROXY_NETWORKS)
application = WithDirect(stack, DirectPredict(fast, stack, without_fast) if fast.enabled else None)
