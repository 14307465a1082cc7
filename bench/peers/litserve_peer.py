"""Peer: LitServe with its dynamic batching on, serving the same models.

The models run through the same compiled function as in aiserver
(:func:`yyai.runtime.loader.load_model`, one input conversion per batch), so only the serving design
differs. It takes aiserver's own requests (base64 JSON, multipart ``img``).
One worker: LitServe's inference worker is a process of its own beside the
HTTP server, which on 2 cores already fills both.
"""

from __future__ import annotations

import json
import os

import numpy as np

from bench.peers import common

PATH = "/predict"


def request(workload) -> tuple[str, bytes]:
    return workload.content_type, workload.body


def results(status: int, body: bytes) -> list[list[dict]]:
    return [json.loads(body)["result"]]


def main() -> None:
    import litserve as ls

    from bench.peers import litserve_peer  # this module by its name (run as __main__): the workers unpickle it so

    api = litserve_peer.KerasAppAPI(
        max_batch_size=int(os.environ.get("BENCH_MAX_BATCH_SIZE", "32")),
        batch_timeout=int(os.environ.get("BENCH_BATCH_TIMEOUT_MICROS", "0")) / 1e6,
        api_path=PATH,
    )
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1, timeout=30)
    server.run(host="127.0.0.1", port=int(os.environ["PORT"]), generate_client_file=False, log_level="warning")


class KerasApp:
    """decode (base64 JSON or multipart ``img``) -> batch -> every model -> unbatch -> encode."""

    def setup(self, device: str) -> None:
        self.app = common.App()

    def decode_request(self, request) -> np.ndarray:
        if "img" in request:
            upload = request["img"]
            return self.app.row(upload.file.read() if hasattr(upload, "file") else upload)
        return self.app.row(common.image_from_json(request))

    def batch(self, inputs: list[np.ndarray]) -> np.ndarray:
        return np.stack(inputs)

    def predict(self, x: np.ndarray) -> list[np.ndarray]:
        return self.app.run(x)

    def unbatch(self, outputs: list[np.ndarray]) -> list[list[dict]]:
        return self.app.format(outputs)

    def encode_response(self, result: list[dict]) -> dict:
        return {"result": result}


def __getattr__(name: str):
    """``KerasAppAPI``, the LitAPI, built on first access: litserve is only in the peer's venv, and LitServe's
    worker processes unpickle the API by this name."""
    if name != "KerasAppAPI":
        raise AttributeError(name)
    import litserve as ls

    globals()[name] = api = type(name, (KerasApp, ls.LitAPI), {"__module__": "bench.peers.litserve_peer"})
    return api


if __name__ == "__main__":
    main()
