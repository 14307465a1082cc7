"""gunicorn configuration: gthread workers, each loading every model app after fork.

Numbers (see bench/RESULTS.md for the measurements behind them):
* ``WEB_CONCURRENCY`` worker processes, default 1: TensorFlow already uses every
  core inside one process, and one process means one batcher per app, so
  concurrent requests meet in the same batch. Raise it for isolation, not speed.
* ``GUNICORN_THREADS`` threads per worker, default 32: threads mostly wait on
  the batcher, so many are cheap and let batches fill.
"""
from aiserver.env import env_int, env_str

bind = f"{env_str('HOST', '0.0.0.0')}:{env_int('PORT', 8000, minimum=1)}"
workers = env_int("WEB_CONCURRENCY", 1, minimum=1)
worker_class = "gthread"
threads = env_int("GUNICORN_THREADS", 32, minimum=1)
timeout = env_int("GUNICORN_TIMEOUT", 120, minimum=1)  # start-up loads and warms every model
graceful_timeout = 30
keepalive = 5
max_requests = 0  # models are expensive to reload; never recycle workers
preload_app = False  # TensorFlow must not be initialised before fork
accesslog = env_str("GUNICORN_ACCESS_LOG", "-") or None
errorlog = "-"


def post_worker_init(worker):
    """Load, compile and warm up every app in this worker before it takes requests."""
    from yyai import serving

    serving.start()
