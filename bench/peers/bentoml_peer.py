"""Peer: BentoML (``bentoml serve``) with one batchable API and its adaptive batching.

Protocol: ``POST /predict``, multipart form with the image as file field
``img`` (BentoML's way for a file: it saves the upload to a temporary file and
hands the API a ``Path``), answered by the list of rows, each row one result
per model. Workload b is aiserver's own body; workload a goes as the same
multipart upload of its PNG, since a JSON field reaches a file parameter
undecoded (a batchable API takes one argument, so one API cannot take both).

Batching: ``@bentoml.api(batchable=True, max_batch_size=$BENCH_MAX_BATCH_SIZE)``.
BentoML's dispatcher keeps one batch in flight per worker and picks its own
wait from the batch times it has seen (adaptive batching, no wait knob):
$BENCH_BATCH_TIMEOUT_MICROS does not apply. Its ``max_latency_ms`` is a
latency budget, not a wait (requests that would exceed it are refused with
503), so it stays at BentoML's default of 60 s. The batch runs in the
worker's thread pool (``threads``, default 1), beside the event loop.

Workers: $BENCH_BENTOML_WORKERS processes on one socket, each with its own
copy of the models, its own batcher and cores / workers TensorFlow threads
(as aiserver's workers). Chosen: 2, one per core. Side by side, driven in
turn with wrk at 32 connections (8 s rounds, req/s): workload a, 1 worker
558-582, 2 workers 1,145-1,177; workload b, 1 worker 111-279, 2 workers
175-496 (2 won every round). One worker's event loop (HTTP, multipart, the
temporary file) fills one core. Access logs are off (as aiserver's); BentoML's
usage tracking is off (no network here).

Processes: ``bentoml serve`` (this process, after exec) supervises the workers
(circus), which it starts in sessions of their own: SIGSTOP to the group
freezes the supervisor only; the workers stay up (idle at ~0% CPU) and go on
answering (also after 90 s of it). SIGTERM to the group stops the supervisor,
which stops the workers (0.5 s).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from bench.peers import common

PATH = "/predict"
BOUNDARY = "benchbentomlboundary"
ENV = {
    "BENCH_BENTOML_WORKERS": "2",
    "BENTOML_DO_NOT_TRACK": "True",
    "BENTOML_HOME": str(Path(__file__).resolve().parent.parent / ".work" / "bentoml-home"),
}


def request(workload) -> tuple[str, bytes]:
    """aiserver's own multipart body for workload b; the same upload of the image for workload a."""
    if workload.content_type.startswith("multipart/form-data"):
        return workload.content_type, workload.body
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="img"; filename="image.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    return f"multipart/form-data; boundary={BOUNDARY}", head + workload.image + f"\r\n--{BOUNDARY}--\r\n".encode()


def results(status: int, body: bytes) -> list[list[dict]]:
    return json.loads(body)


def _service():
    import bentoml

    @bentoml.service(workers=int(os.environ["BENCH_BENTOML_WORKERS"]), logging={"access": {"enabled": False}})
    class KerasAppService:
        def __init__(self) -> None:
            self.app = common.App()

        @bentoml.api(batchable=True, max_batch_size=int(os.environ.get("BENCH_MAX_BATCH_SIZE", "32")))
        def predict(self, img: list[Path]) -> list[list[dict]]:
            return self.app.predict([path.read_bytes() for path in img])

    return KerasAppService


def __getattr__(name: str):
    """``Service``, the BentoML service, built on first access (bentoml is only in the peer's venv;
    ``bentoml serve`` and its workers import it by name)."""
    if name != "Service":
        raise AttributeError(name)
    globals()["Service"] = service = _service()
    return service


def main() -> None:
    for key, value in ENV.items():
        os.environ.setdefault(key, value)
    common.share_cores(int(os.environ["BENCH_BENTOML_WORKERS"]))
    bentoml = str(Path(sys.executable).parent / "bentoml")
    os.execv(
        bentoml,
        [bentoml, "serve", "bench.peers.bentoml_peer:Service", "--host", "127.0.0.1", "--port", os.environ["PORT"]],
    )


if __name__ == "__main__":
    main()
