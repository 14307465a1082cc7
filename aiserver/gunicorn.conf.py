"""gunicorn configuration: uvicorn workers (aiserver/workers.py), each loading every model app after fork.

gunicorn serves ``aiserver.asgi:application``: predict requests are answered
on each worker's event loop (yyai/http/fastpath.py), everything else by Django in a
thread pool.

* ``WEB_CONCURRENCY`` worker processes, default: one per CPU core this process
  may use (one per GPU, each pinned to its own, when TensorFlow sees GPUs:
  aiserver/devices.py), each worker on cores of its own on a CPU host
  (``YYAI_PIN_WORKERS``), and each worker's TensorFlow gets an equal share of the cores
  (``TF_NUM_INTRAOP_THREADS`` and ``TF_NUM_INTEROP_THREADS`` default to
  cores / workers, at least 1): a worker's Python runs on one core at a time
  (the GIL), so a second worker uses the second core, and split pools keep two
  workers' model threads from fighting over the same cores (measured in
  bench/NOTES.md, "Workers and TensorFlow threads"); on x86-64 TensorFlow uses oneDNN's
  kernels (``TF_ENABLE_ONEDNN_OPTS=1`` unless given: aiserver/devices.py). Each worker holds its own
  copy of every model and its own batcher; reloads reach every worker through
  the database generation. Set ``WEB_CONCURRENCY=1`` where memory is tighter
  than CPU.
* ``GUNICORN_THREADS`` threads per worker for Django's requests (admin, reload,
  uploads, the browsable API), default 16. Fast-path
  predicts hold no thread: they wait for their batch on the event loop, so the
  batch size is not capped by a thread count.

Metrics: Prometheus multiprocess mode. Every worker writes its series to files
in ``PROMETHEUS_MULTIPROC_DIR`` (default ``<YYAI_DATA_DIR>/prometheus``, emptied
when the master starts); a scrape of ``/metrics`` on any worker sums the live ones.
"""

import os
from pathlib import Path

from aiserver import balance, bootstrap, devices
from aiserver.env import env_bool, env_int, env_str

# Before any worker imports prometheus_client (workers inherit the master's environment).
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(bootstrap.data_dir() / "prometheus"))

bind = f"{env_str('HOST', '0.0.0.0')}:{env_int('PORT', 8000, minimum=1)}"
_cpus = devices.usable_cpus()
# One worker per core, or one per GPU when TensorFlow sees GPUs (aiserver/devices.py); WEB_CONCURRENCY overrides.
_plan = devices.plan(
    gpus=devices.visible_gpus(),
    cores=len(_cpus),
    requested_workers=env_int("WEB_CONCURRENCY", 0, minimum=1) or None,
    cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
)
workers = _plan.workers
# Each worker on CPUs of its own (YYAI_PIN_WORKERS, default auto: a CPU host with a CPU per worker).
_pinned = devices.pins_workers(
    env_str("YYAI_PIN_WORKERS", "auto"), workers=workers, cpus=len(_cpus), gpus=bool(_plan.gpu_ids)
)
# Read by TensorFlow when a worker first runs an op (workers inherit the master's environment).
for _pool in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
    os.environ.setdefault(_pool, str(_plan.tf_threads))
os.environ.update(devices.onednn_env())  # oneDNN's kernels on every x86-64 CPU, not only with AVX-512 (devices.py)
worker_class = "aiserver.workers.Worker"
wsgi_app = "aiserver.asgi:application"
timeout = env_int("GUNICORN_TIMEOUT", 120, minimum=1)  # start-up loads and warms every model
graceful_timeout = 30
keepalive = 5
max_requests = 0  # models are expensive to reload; never recycle workers
preload_app = False  # TensorFlow must not be initialised before fork
accesslog = env_str("GUNICORN_ACCESS_LOG", "-") or None
errorlog = "-"
if env_bool("YYAI_LOG_JSON"):
    accesslog = None  # yyai.http.request_context logs one JSON line per request instead
    logconfig_dict = {  # gunicorn's own messages as JSON too, one line each
        "formatters": {"json": {"()": "yyai.logging_json.JsonFormatter"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"level": "INFO", "handlers": ["console"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
            "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": False},
        },
    }


def on_starting(server):
    """Create the data folder and the secret key before any worker reads settings; start every run with an
    empty metrics folder: stale files would add a previous run's counts."""
    bootstrap.prepare()
    folder = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    balance.prepare()  # the workers' connection counts, shared: aiserver/balance.py


def pre_fork(server, worker):
    """Give the new worker a GPU (the least used by the live workers); nothing on a CPU host."""
    worker.aiserver_gpu = devices.assign_gpu(
        _plan.gpu_ids, (getattr(live, "aiserver_gpu", None) for live in server.WORKERS.values())
    )


def post_fork(server, worker):
    """In the worker, before it imports TensorFlow or starts a thread: take a slot in the connection table, run on
    the CPUs of that slot (every thread it starts inherits them) and see only its own GPU."""
    balance.join()
    slot = balance.slot()
    if _pinned and slot is not None:
        cpus = devices.worker_cpus(slot, workers, _cpus)
        os.sched_setaffinity(0, cpus)
        server.log.info("worker %s runs on CPU %s", worker.pid, ",".join(map(str, sorted(cpus))))
    if worker.aiserver_gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = worker.aiserver_gpu
        server.log.info("worker %s uses GPU %s", worker.pid, worker.aiserver_gpu)


def post_worker_init(worker):
    """Load, compile and warm up every app in this worker before it takes requests."""
    from yyai import metrics
    from yyai.conf import yyai_settings
    from yyai.lifecycle import startup
    from yyai.runtime import process_memory

    # TensorFlow, Keras, Django and the models leave ~400k objects that live as long as the worker.
    # A full collection scans them all with every thread stopped (0.5-0.8 s measured: the p99 spikes);
    # frozen, they are never scanned again and collections only see request garbage. Frozen objects are
    # never freed either: after a reload, yyai.runtime.process_memory.release_when_idle() unfreezes, collects
    # the retired version and freezes again (one pause per reload). Under a memory budget apps come and go:
    # the models are left unfrozen (freeze before loading them), so unloading one costs no such pause.
    budgeted = yyai_settings.MEMORY_BUDGET is not None
    if budgeted:
        process_memory.freeze()
    metrics.observe_registry(startup.start())
    if not budgeted:
        process_memory.freeze()


def worker_exit(server, worker):
    """In the worker, as it stops: leave the fleet at once, so that no reload waits for it."""
    from yyai.lifecycle import startup

    startup.stop()


def child_exit(server, worker):
    """Drop a dead worker's live gauges (queue depth, availability) from the metrics sums, and its connections
    from the connection table."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
    balance.forget(worker.pid)
