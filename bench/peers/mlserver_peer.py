"""Peer: Seldon MLServer with its adaptive batching on, serving the same models.

MLServer (FastAPI under uvicorn, uvloop) parses the V2 JSON request into
pydantic objects; its adaptive batcher merges the queued requests into one
(``max_batch_size`` $BENCH_MAX_BATCH_SIZE, ``max_batch_time``
$BENCH_BATCH_TIMEOUT_MICROS) and hands it to the inference worker process,
where :class:`KerasApp` decodes the base64 and hands the batch to
:class:`bench.peers.common.App` (aiserver's preprocessing, compiled model
functions and formatting). MLServer turns batching off for a wait of 0, so 0 becomes ``MIN_BATCH_TIME``
(1 µs, the smallest the driver's unit gives): the batcher then takes what is
already queued, as aiserver's greedy batcher does (at 32 connections, mean
batch 7 rows on workload a; it does not wait for the worker's previous batch,
so batches stay smaller than aiserver's).

Configuration: one inference worker process (``PARALLEL_WORKERS``, MLServer's
default) beside the HTTP process, so each core has one busy process; gRPC on
a spare port, the metrics server and debug mode (uvicorn's per-request
access log) off. Interleaved 4 s wrk runs at 32 connections (0 / 1 / 2
workers; 0 runs the model on the HTTP event loop): workload a 777 / 823 / 721
and 1,262 / 953 / 1,317 req/s, workload b 228 / 194 / 199: within this
machine's noise, so the default stays.

Protocol: ``POST /v2/models/{app}/infer`` with one BYTES input ``image`` of
shape [1] holding the image as base64 text (workload a: aiserver's own base64
string; workload b: the JPEG, base64-encoded: MLServer's REST API takes JSON
only). The answer's BYTES output ``result`` holds, per row, the JSON list of
per-model result dicts.

It may be frozen with SIGSTOP (idle it uses about 0.2% of a core) and stops
cleanly on SIGTERM in 1-3 s. Its parallel workers need uvloop < 0.22 (see
requirements-mlserver.txt).

Run: ``python -m bench.peers.mlserver_peer`` from bench/.work/venv-mlserver
with $BENCH_APP_DIR, $PORT, $BENCH_MAX_BATCH_SIZE and $BENCH_BATCH_TIMEOUT_MICROS.
"""

from __future__ import annotations

import functools
import json
import os

from bench.models import Workload
from bench.peers import common

PATH = "/v2/models/{app}/infer"
PARALLEL_WORKERS = 1
MIN_BATCH_TIME = 1e-6  # seconds


def request(workload: Workload) -> tuple[str, bytes]:
    """The V2 JSON body for ``workload``: its image as base64 text in a BYTES input."""
    return common.v2_image_request(workload, [1])


results = common.v2_results


def __getattr__(name: str):
    """``KerasApp``, built on first use: MLServer is importable in the peer's venv only."""
    if name == "KerasApp":
        return _keras_app()
    raise AttributeError(name)


@functools.cache
def _keras_app() -> type:
    from mlserver import MLModel
    from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput

    class KerasApp(MLModel):
        """The app folder $BENCH_APP_DIR as one MLServer model: base64 texts in, JSON results out."""

        async def load(self) -> bool:
            self.app = common.App()
            return True

        async def predict(self, payload: InferenceRequest) -> InferenceResponse:
            rows = self.app.predict([common.image_from_json({"image": text}) for text in payload.inputs[0].data.root])
            return InferenceResponse(
                model_name=self.name,
                outputs=[
                    ResponseOutput(
                        name="result", datatype="BYTES", shape=[len(rows)], data=[json.dumps(row) for row in rows]
                    )
                ],
            )

    return KerasApp


def main() -> None:
    import asyncio
    import socket
    import tempfile

    from mlserver import MLServer
    from mlserver.settings import ModelSettings, Settings
    from mlserver.utils import install_uvloop_event_loop

    with socket.socket() as sock:  # MLServer always serves gRPC too: a spare port for it
        sock.bind(("127.0.0.1", 0))
        grpc_port = sock.getsockname()[1]
    timeout = int(os.environ.get("BENCH_BATCH_TIMEOUT_MICROS", "0")) / 1e6
    with tempfile.TemporaryDirectory(prefix="bench-mlserver-") as scratch:  # else the workers write into the cwd
        settings = Settings(
            host="127.0.0.1",
            http_port=int(os.environ["PORT"]),
            grpc_port=grpc_port,
            metrics_endpoint=None,
            parallel_workers=PARALLEL_WORKERS,
            debug=False,
            environments_dir=os.path.join(scratch, "envs"),
            metrics_dir=os.path.join(scratch, "metrics"),
        )
        model = ModelSettings(
            name=common.app_dir().name,
            implementation="bench.peers.mlserver_peer.KerasApp",  # the workers import it by name
            max_batch_size=int(os.environ.get("BENCH_MAX_BATCH_SIZE", "32")),
            max_batch_time=max(timeout, MIN_BATCH_TIME),
        )

        async def serve() -> None:
            await MLServer(settings).start([model])

        install_uvloop_event_loop()  # as `mlserver start` does
        asyncio.run(serve())


if __name__ == "__main__":
    main()
