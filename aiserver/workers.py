"""The gunicorn worker class: uvicorn on uvloop with httptools, serving ``aiserver.asgi:application``."""

import signal
import sys

from uvicorn_worker import UvicornWorker

from aiserver.protocol import LimitedHttpToolsProtocol


def _exit(signum, frame):
    sys.exit(0)


class Worker(UvicornWorker):
    """HTTP parsed in C (httptools, with deadlines and limits: aiserver/protocol.py) on uvloop; no ASGI
    lifespan (models load in gunicorn's post_worker_init).

    uvicorn's own proxy-header handling is off: it would believe X-Forwarded-* from 127.0.0.1 (gunicorn's
    ``forwarded_allow_ips`` default) and leave them in place; ``aiserver.proxy.TrustedProxies`` does it instead.

    After a graceful shutdown uvicorn raises the SIGTERM (or SIGINT) it caught once more, under the handler it
    found: here one that exits normally, so that gunicorn's ``worker_exit`` hook runs (the worker leaves the
    fleet: gunicorn.conf.py) instead of the default action killing the process first.
    """

    CONFIG_KWARGS = {"loop": "uvloop", "http": LimitedHttpToolsProtocol, "lifespan": "off", "proxy_headers": False}

    def init_signals(self) -> None:
        super().init_signals()
        signal.signal(signal.SIGTERM, _exit)
        signal.signal(signal.SIGINT, _exit)
