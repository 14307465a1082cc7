"""Peer: NVIDIA Triton Inference Server through PyTriton, its dynamic batcher on, serving the same models.

Triton (C++) takes the HTTP requests, parses the KServe-v2 JSON and batches
them in its dynamic batcher (``max_batch_size`` $BENCH_MAX_BATCH_SIZE,
``max_queue_delay_microseconds`` $BENCH_BATCH_TIMEOUT_MICROS: with 0 it still
batches, greedily, whatever queued while the instance was busy). Each batch
goes through shared memory to this Python process, where the inference
callable decodes the base64 and hands the batch to :class:`bench.peers.common.App`
(aiserver's preprocessing, compiled model functions and formatting).

Configuration: two model instances (``TRITON_INSTANCES``, one per core),
Triton's default HTTP threads, gRPC and metrics off. PyTriton runs every
instance's callable as a thread of this one Python process: while one thread
holds the GIL the other decodes JPEGs or runs TensorFlow (both release it).
Interleaved 4 s wrk runs at 32 connections on this 2-core machine, 1 against
2 instances: workload b 222 against 293 req/s (+32%), workload a 1,499
against 1,313 (-12%); two instances win overall, as one worker per core does
for aiserver.

Protocol: ``POST /v2/models/{app}/infer`` with one BYTES input ``image`` of
shape [1, 1] holding the image as base64 text (workload a: aiserver's own
base64 string; workload b: the JPEG, base64-encoded, since raw bytes need the
binary-tensor extension's ``Inference-Header-Content-Length`` header, which
the driver does not send). The answer's BYTES output ``result`` holds, per
row, the JSON list of per-model result dicts.

Environment: Triton's Python backend stub links ``libpython3.11.so.1.0``;
:func:`main` puts the running interpreter's own library folder first on
$LD_LIBRARY_PATH (the stub inherits it); else the stub picks up the system's
libpython, another 3.11, and fails to start the model.

Not to be frozen (``FREEZE``): stopped with SIGSTOP between loads as
bench/run.py does (after its settling request), the two-instance server
aborted on thaw in both tries (``boost::interprocess::lock_exception`` in the
Python backend; one instance survived 20 such cycles). Idle it uses about
0.5% of a core, so leaving it running costs the others nothing. SIGTERM
stops it cleanly, its workspace and shared memory removed, in about 5-7 s.

Run: ``python -m bench.peers.triton_peer`` from bench/.work/venv-triton with
$BENCH_APP_DIR, $PORT, $BENCH_MAX_BATCH_SIZE and $BENCH_BATCH_TIMEOUT_MICROS.
"""

from __future__ import annotations

import json
import os
import signal
import sysconfig

from bench.models import Workload
from bench.peers import common

PATH = "/v2/models/{app}/infer"
FREEZE = False
TRITON_INSTANCES = 2


def request(workload: Workload) -> tuple[str, bytes]:
    """The v2 JSON body for ``workload``: its image as base64 text in a BYTES input."""
    return common.v2_image_request(workload, [1, 1])


results = common.v2_results


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["LD_LIBRARY_PATH"] = os.pathsep.join(
        filter(None, [sysconfig.get_config_var("LIBDIR"), os.environ.get("LD_LIBRARY_PATH")])
    )
    import numpy as np
    from pytriton.decorators import batch
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig

    app = common.App()

    @batch
    def infer(image: np.ndarray) -> dict[str, np.ndarray]:
        """(N, 1) base64 texts -> (N, 1) JSON texts, one list of per-model results each."""
        rows = app.predict([common.image_from_json({"image": text.decode()}) for text in image[:, 0]])
        return {"result": np.array([[json.dumps(row).encode()] for row in rows], dtype=np.object_)}

    batcher = DynamicBatcher(max_queue_delay_microseconds=int(os.environ.get("BENCH_BATCH_TIMEOUT_MICROS", "0")))
    config = TritonConfig(
        http_address="127.0.0.1",
        http_port=int(os.environ["PORT"]),
        allow_grpc=False,
        allow_metrics=False,
        exit_timeout_secs=10,
    )
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # serve() stops Triton and cleans up on SIGINT only
    with Triton(config=config) as triton:
        triton.bind(
            model_name=common.app_dir().name,
            infer_func=[infer] * TRITON_INSTANCES,
            inputs=[Tensor(name="image", dtype=np.bytes_, shape=(1,))],
            outputs=[Tensor(name="result", dtype=np.bytes_, shape=(1,))],
            config=ModelConfig(max_batch_size=int(os.environ.get("BENCH_MAX_BATCH_SIZE", "32")), batcher=batcher),
        )
        triton.serve()


if __name__ == "__main__":
    main()
