"""The benchmark's peer servers, on the same models as aiserver.

The seed's design (``seed_django``) runs from .venv under gunicorn. Every other
peer is a module ``bench/peers/<name>_peer.py`` with ``requirements-<name>.txt``
beside it, run as ``python -m bench.peers.<name>_peer`` from its own venv
(:mod:`bench.venvs`). The driver imports the module from .venv, so the peer's
framework is imported only inside ``main()``. A peer module provides:

- ``PATH``: the predict URL path, ``{app}`` filled in by the driver;
- ``request(workload) -> (content type, body) | None``: the workload's request in the peer's own protocol;
  None when it cannot carry it, with the reason in ``CANNOT[workload.key]``;
- ``results(status, body) -> list[list[dict]]``: its answer as aiserver's ``predictions`` (per row, one
  result per model), so the driver checks every peer answers what aiserver answers;
- ``main()``: serve $BENCH_APP_DIR on 127.0.0.1:$PORT with batching up to $BENCH_MAX_BATCH_SIZE rows and
  $BENCH_BATCH_TIMEOUT_MICROS of wait, through the same compiled model function as aiserver;
- optionally ``ENV`` (more environment) and ``FREEZE = False`` (the peer does not survive SIGSTOP while idle).
"""

NAMES = {
    "litserve": "LitServe",
    "triton": "Triton (pytriton)",
    "mlserver": "MLServer",
    "kserve": "KServe",
    "bentoml": "BentoML",
    "rayserve": "Ray Serve",
}
