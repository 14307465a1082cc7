"""The gunicorn worker class: uvicorn on uvloop with httptools, serving ``aiserver.asgi:application``."""
from uvicorn_worker import UvicornWorker


class Worker(UvicornWorker):
    """HTTP parsed in C (httptools) on uvloop; no ASGI lifespan (models load in gunicorn's post_worker_init)."""

    CONFIG_KWARGS = {"loop": "uvloop", "http": "httptools", "lifespan": "off"}
