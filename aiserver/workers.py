"""The gunicorn worker class: uvicorn on uvloop with httptools, serving ``aiserver.asgi:application``."""
from uvicorn_worker import UvicornWorker

from aiserver.protocol import LimitedHttpToolsProtocol


class Worker(UvicornWorker):
    """HTTP parsed in C (httptools, with deadlines and limits: aiserver/protocol.py) on uvloop; no ASGI
    lifespan (models load in gunicorn's post_worker_init).

    uvicorn's own proxy-header handling is off: it would believe X-Forwarded-* from 127.0.0.1 (gunicorn's
    ``forwarded_allow_ips`` default) and leave them in place; ``aiserver.proxy.TrustedProxies`` does it instead.
    """

    CONFIG_KWARGS = {"loop": "uvloop", "http": LimitedHttpToolsProtocol, "lifespan": "off", "proxy_headers": False}
