"""Use cases of the server, free of HTTP (HackSoft style: keyword-only, typed).

* :mod:`.dataplane`: inference with named tensors, readiness, metadata and
  version matching, which every protocol calls (its CPU work in :mod:`.cpu`'s pool);
* :mod:`.predictions`: the canonical predict answer, and apps whose handler builds it;
* :mod:`.reloads`: reload an app here and announce it to every other process;
* :mod:`.labels`: version labels and canary traffic, promote and roll back;
* :mod:`.records`: the apps' rows and the reload history;
* :mod:`.uploads`: publish a new numbered version after validating it.
"""

from yyai.services.addressing import Address, parse_address
from yyai.services.dataplane import InferRequest, InferResult, Where, infer, infer_async
from yyai.services.labels import RoutesOutcome, promote, roll_back, set_routes
from yyai.services.predictions import PredictionResult, predict, predict_async
from yyai.services.records import ensure_app, record_reload, sync_apps
from yyai.services.reloads import ReloadOutcome, follow_app, reload_app
from yyai.services.uploads import UploadResult, upload_version

__all__ = [
    "InferRequest",
    "InferResult",
    "PredictionResult",
    "Where",
    "Address",
    "infer",
    "infer_async",
    "parse_address",
    "predict",
    "predict_async",
    "ReloadOutcome",
    "RoutesOutcome",
    "promote",
    "roll_back",
    "set_routes",
    "ensure_app",
    "follow_app",
    "record_reload",
    "reload_app",
    "sync_apps",
    "UploadResult",
    "upload_version",
]
