"""Peer: KServe's Python ModelServer (REST, v1 protocol) with a custom ``kserve.Model``.

Protocol: KServe v1 JSON, ``POST /v1/models/<app>:predict`` with
``{"instances": [{"image": <base64 image>}]}``, answered by
``{"predictions": [<per row, one result per model>]}``. v1 is JSON only, so
workload b's JPEG goes as base64 too (KServe has no multipart upload).

Batching: none. KServe's batcher is the Go agent sidecar of its Kubernetes
deployment; the Python server runs every request's instances as one batch on
its own, so each request here is a batch of 1 ($BENCH_MAX_BATCH_SIZE and
$BENCH_BATCH_TIMEOUT_MICROS do not apply). ``predict`` runs the models on the
event loop, as KServe's own sklearn and xgboost servers do.

Workers: KServe's ``workers`` setting ($BENCH_KSERVE_WORKERS) spawns that many
uvicorn processes on one socket; with more than one, each worker holds its own
copy of the models and gets cores / workers TensorFlow threads (as aiserver's
workers do). Chosen: 2, one per core. Side by side, driven in turn with wrk at
32 connections (8 s rounds, req/s): workload a, 1 worker 492-592, 2 workers
513-1,298 (and 534-962 with TensorFlow's default pools); workload b, 1 worker
298-301, 2 workers 347-506. One process's event loop fills one core with
KServe's per-request Python (FastAPI, JSON, base64, the model call), so a
second process uses the second core.

Traps handled: the parent pickles the registered model into every spawned
worker, so the model pickles without its Keras models (``__reduce__``) and
each worker loads its own copy in a thread as it starts (the parent loads
none): loading in the unpickling itself would delay the worker's reply to the
parent's 5 s liveness ping, and the parent would kill and respawn it.
KServe's REST server binds 0.0.0.0 and logs every request (access log,
latency log); here it binds 127.0.0.1 with both logs off, and its gRPC server
is off.

Processes: the parent and its workers (plus multiprocessing's resource
tracker) share this process group; SIGTERM stops them all (under a second),
and they survive SIGSTOP/SIGCONT (90 s frozen, answers at once). Idle: ~0% CPU.
"""

from __future__ import annotations

import base64
import copy
import json
import os

from bench.peers import common

PATH = "/v1/models/{app}:predict"
ENV = {"KSERVE_LOGLEVEL": "WARNING", "BENCH_KSERVE_WORKERS": "2"}


def request(workload) -> tuple[str, bytes]:
    """One v1 instance holding the workload's image as base64 (both workloads)."""
    instance = {"image": base64.b64encode(workload.image).decode()}
    return "application/json", json.dumps({"instances": [instance]}).encode()


def results(status: int, body: bytes) -> list[list[dict]]:
    return json.loads(body)["predictions"]


def model(name: str, serving: bool = True):
    """A ``kserve.Model`` named ``name`` serving the app; ``serving``: this process answers, so it loads the
    models, in the background (a worker process rebuilds the model so, from pickle)."""
    from concurrent.futures import ThreadPoolExecutor

    import kserve

    class KServeApp(kserve.Model):
        def __init__(self) -> None:
            super().__init__(name)
            self.app = ThreadPoolExecutor(1).submit(common.App) if serving else None
            self.ready = True  # registrable at once; a request waits for the models if they are still loading

        def __reduce__(self):
            return model, (name,)  # without the parent's Keras models: a worker loads its own

        def predict(self, payload: dict, headers: dict | None = None) -> dict:
            images = [common.image_from_json(instance) for instance in payload["instances"]]
            return {"predictions": self.app.result().predict(images)}

    return KServeApp()


def main() -> None:
    for key, value in ENV.items():
        os.environ.setdefault(key, value)
    workers = int(os.environ["BENCH_KSERVE_WORKERS"])
    common.share_cores(workers)
    import kserve
    from kserve import logging as kserve_logging
    from kserve import model_server

    quiet = copy.deepcopy(kserve_logging.KSERVE_LOG_CONFIG)  # KServe's log config without the access log
    quiet["loggers"]["uvicorn.access"]["handlers"] = []
    model_server.args.log_config_file = quiet  # what --log_config_file sets; every worker configures from it

    class LoopbackServer(kserve.ModelServer):
        """KServe's ModelServer on 127.0.0.1 (its REST server binds 0.0.0.0)."""

        async def _serve(self):
            rest = self._rest_server or self._rest_multiprocess_server._rest_server
            rest.config.host = "127.0.0.1"
            await super()._serve()

    served = model(common.app_dir().name, serving=workers == 1)  # with workers, the parent only supervises
    LoopbackServer(
        http_port=int(os.environ["PORT"]), workers=workers, enable_grpc=False, enable_latency_logging=False
    ).start([served])


if __name__ == "__main__":
    main()
