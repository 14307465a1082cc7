"""Peer: LitServe with its dynamic batching on, serving the same models.

The models run through the same compiled function as in aiserver
(:func:`yyai.runtime.loader.load_model`, one input conversion per batch), so only the serving design
differs. Run: ``python -m bench.peers.litserve_peer`` with $BENCH_APP_DIR,
$PORT, $BENCH_MAX_BATCH_SIZE and $BENCH_BATCH_TIMEOUT_MICROS.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import litserve as ls  # noqa: E402
import numpy as np  # noqa: E402

from bench.peers import common  # noqa: E402


class KerasAppAPI(ls.LitAPI):
    """decode (base64 JSON or multipart ``img``) -> batch -> every model -> unbatch -> encode."""

    def setup(self, device: str) -> None:
        from yyai.runtime.loader import load_model

        folder = common.app_dir()
        self.spec = common.spec_of(folder)
        self.models = [load_model(f) for f in common.model_files(folder)]
        self.signature = self.models[0].signature
        self.names = [m.name for m in self.models]
        self.output_shapes = [m.signature.outputs[0].shape for m in self.models]

    def decode_request(self, request) -> np.ndarray:
        if "img" in request:
            upload = request["img"]
            image = upload.file.read() if hasattr(upload, "file") else upload
        else:
            image = common.image_from_json(request)
        return common.to_row(image, self.spec, self.signature.inputs[0].shape)

    def batch(self, inputs: list[np.ndarray]) -> np.ndarray:
        return np.stack(inputs)

    def predict(self, x: np.ndarray) -> list[np.ndarray]:
        from yyai.runtime.feed import Feed
        from yyai.runtime.servable import feed_for

        feed = Feed({self.signature.inputs[0].name: x})  # one-input models of an app may name it differently
        return [next(iter(m.run(self.signature.name, feed_for(m, self.signature.name, feed)).values()))
                for m in self.models]

    def unbatch(self, outputs: list[np.ndarray]) -> list[list[dict]]:
        return common.results(self.names, outputs, self.spec, self.output_shapes)

    def encode_response(self, result: list[dict]) -> dict:
        return {"result": result}


def main() -> None:
    api = KerasAppAPI(max_batch_size=int(os.environ.get("BENCH_MAX_BATCH_SIZE", "32")),
                      batch_timeout=int(os.environ.get("BENCH_BATCH_TIMEOUT_MICROS", "0")) / 1e6,
                      api_path="/predict")
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1, timeout=30)
    server.run(host="127.0.0.1", port=int(os.environ["PORT"]), generate_client_file=False, log_level="warning")


if __name__ == "__main__":
    main()
