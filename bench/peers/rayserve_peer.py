"""Peer: Ray Serve, one deployment whose model call is a ``@serve.batch`` method, on a local Ray cluster.

Protocol: aiserver's own requests (base64 JSON ``{"image": ...}``, multipart
``img``) at ``POST /predict``, answered by ``{"result": [one result per model]}``.
Ray Serve's HTTP proxy (an actor process of its own) hands each request to a
replica, which decodes and preprocesses it on its event loop and awaits the
batched call.

Batching: ``@serve.batch(max_batch_size=$BENCH_MAX_BATCH_SIZE,
batch_wait_timeout_s=$BENCH_BATCH_TIMEOUT_MICROS / 1e6)``, one batch in flight
per replica (``max_concurrent_batches`` 1, the default); the batch runs in a
thread, so the replica's loop goes on taking requests and the next batch grows
meanwhile: a wait of 0 batches. ``max_ongoing_requests`` (Serve's default is
5, which would cap a batch at 5) is twice the batch size: one full batch
running, the next one filling.

Replicas: $BENCH_RAYSERVE_REPLICAS, each a Ray actor process with its own copy
of the models and cores / replicas TensorFlow threads (as aiserver's workers).
Chosen: 1, Serve's default. Side by side, driven in turn with wrk at 32
connections (8 s rounds, req/s): workload a, 1 replica 233-268, 2 replicas
227-271; workload b, 1 replica 128-155, 2 replicas 142-169: within the noise,
since the proxy, a process of its own, already takes a core's share per
request, and a second replica doubles the models' memory. Ray runs its
worker processes at nice 15; here at 0 (``RAY_worker_niceness``) like every
other server, so the load generator does not take their CPU first (workload
a, 1 replica: 235-249 at nice 15, 250-282 at 0).

The cluster: started by ``ray.init`` in this process, no dashboard, a small
object store (requests go by the proxy's direct calls, not the store), logs
under bench/.work/ray, Serve's access log off, every server on 127.0.0.1
(Ray's one-machine mode; a replica's inter-deployment gRPC server, which Serve
binds to "[::]", is moved there in each worker). Every Ray process
(gcs_server, raylet, the agents, the proxy, controller and replica actors)
stays in this process's group: SIGTERM to the group stops them all, and
SIGSTOP freezes them all (it answers at once after 90 s frozen). Idle, the
cluster uses about 9% of a core (Ray's and Serve's control loops).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import numpy as np

from bench.peers import common

PATH = "/predict"
OBJECT_STORE_BYTES = 100 * 1024 * 1024  # Ray's smallest is 75 MiB
ENV = {
    "BENCH_RAYSERVE_REPLICAS": "1",
    "RAY_USAGE_STATS_ENABLED": "0",  # no usage reports (no network here)
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # a one-machine cluster: node address 127.0.0.1, servers bound to it
    "RAY_process_group_cleanup_enabled": "false",  # workers stay in the raylet's process group, which is ours
    "RAY_worker_niceness": "0",  # Ray's workers (the proxy, the replicas) at the priority of every other server
}


def request(workload) -> tuple[str, bytes]:
    return workload.content_type, workload.body


def results(status: int, body: bytes) -> list[list[dict]]:
    return [json.loads(body)["result"]]


async def image_of(request) -> bytes:
    """A Starlette request's image: base64 JSON or the multipart field ``img``."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        async with request.form() as form:
            return await form["img"].read()
    return common.image_from_json(await request.json())


def _deployment(replicas: int, max_batch_size: int, wait_seconds: float):
    from ray import serve

    @serve.deployment(
        num_replicas=replicas, max_ongoing_requests=2 * max_batch_size, ray_actor_options={"num_cpus": 0}
    )  # no CPU reservation, so Ray sets no OMP_NUM_THREADS
    class KerasAppDeployment:
        def __init__(self) -> None:
            self.app = common.App()

        @serve.batch(max_batch_size=max_batch_size, batch_wait_timeout_s=wait_seconds)
        async def predict(self, rows: list[np.ndarray]) -> list[list[dict]]:
            return await asyncio.to_thread(lambda: self.app.format(self.app.run(np.stack(rows))))

        async def __call__(self, request) -> dict:
            return {"result": await self.predict(self.app.row(await image_of(request)))}

    return KerasAppDeployment


def _loopback_replica_grpc() -> None:
    """In each Ray worker: a Serve replica binds its inter-deployment gRPC server to 127.0.0.1, not "[::]"."""
    from ray.serve._private import replica

    bind = replica.add_port_to_grpc_server
    replica.add_port_to_grpc_server = lambda server, address: bind(server, address.replace("[::]", "127.0.0.1"))


def main() -> None:
    for key, value in ENV.items():
        os.environ.setdefault(key, value)
    replicas = int(os.environ["BENCH_RAYSERVE_REPLICAS"])
    common.share_cores(replicas)
    import ray
    from ray import serve

    ray.init(
        include_dashboard=False,
        object_store_memory=OBJECT_STORE_BYTES,
        log_to_driver=False,
        _temp_dir=str(Path(__file__).resolve().parent.parent / ".work" / "ray"),
        runtime_env={"worker_process_setup_hook": _loopback_replica_grpc},
    )
    quiet = {"enable_access_log": False, "log_level": "WARNING"}
    serve.start(http_options={"host": "127.0.0.1", "port": int(os.environ["PORT"])}, logging_config=quiet)
    deployment = _deployment(
        replicas,
        int(os.environ.get("BENCH_MAX_BATCH_SIZE", "32")),
        int(os.environ.get("BENCH_BATCH_TIMEOUT_MICROS", "0")) / 1e6,
    )
    serve.run(deployment.bind(), route_prefix=PATH, logging_config=quiet)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # then ray.shutdown (atexit) stops what ray.init started
    signal.pause()  # serve until SIGTERM, which every Ray process of the group gets too


if __name__ == "__main__":
    main()
