"""KServe v2 / Open Inference Protocol over REST: ``/v2/...``, as Triton's clients call it; a codec over the data plane.

* ``GET /v2`` server metadata; ``/v2/health/live`` and ``/v2/health/ready``
  (200 true, 400 false, as the protocol says);
* ``GET /v2/models/<name>[/versions/<v>]`` model metadata (every input and
  output with its datatype and shape, -1 for any length); ``.../ready``;
* ``POST .../infer``: named inputs of any datatype (BOOL, UINT8..64, INT8..64,
  FP16/32/64, BYTES), JSON or binary tensors; ``BYTES`` feed a string input as
  they are and an image input as image files. Optional ``outputs`` selection
  (each optionally binary), ``id`` echoed; outputs in their own datatypes.

Errors are ``{"error": "<message>"}`` with the canonical HTTP status.
"""

from __future__ import annotations

import json

from django.http import HttpResponse, JsonResponse
from django.urls import re_path
from rest_framework.permissions import AllowAny
from rest_framework.request import Request

from yyai import services
from yyai.compat import protos, v2tensors
from yyai.compat.http import ProtocolError, ProtocolView
from yyai.conf import yyai_settings
from yyai.runtime.signature import DTYPES, TensorSpec
from yyai.services import addressing, dataplane

NAME = rf"(?P<name>{protos.NAME_PATTERN})"
VERSION = r"(?:/versions/(?P<version>[A-Za-z0-9_.-]+))?"
SERVER_NAME = "aiserver"
SERVER_VERSION = "1.0"
EXTENSIONS = ["binary_tensor_data"]


def _tensor_meta(spec: TensorSpec, batched: bool) -> dict:
    shape = [-1] if spec.shape is None else [-1 if d is None else d for d in ((None,) if batched else ()) + spec.shape]
    return {"name": spec.name, "datatype": v2tensors.datatype_of(DTYPES[spec.dtype]), "shape": shape}


class OpenView(ProtocolView):
    """Health and server metadata: anyone, never throttled, no authentication run (no password hashed)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []


class ServerMetadataView(OpenView):
    """``GET /v2``."""

    def get(self, request: Request) -> JsonResponse:
        return JsonResponse({"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": EXTENSIONS})


class LiveView(OpenView):
    """``GET /v2/health/live``: the process answers."""

    def get(self, request: Request) -> JsonResponse:
        return JsonResponse({"live": True})


class ServerReadyView(OpenView):
    """``GET /v2/health/ready``: every app has an AVAILABLE version."""

    def get(self, request: Request) -> JsonResponse:
        ready = dataplane.server_ready()
        return JsonResponse({"ready": ready}, status=200 if ready else 400)


class ModelMetadataView(ProtocolView):
    """``GET /v2/models/<name>[/versions/<v>]``: the served signature's inputs and outputs."""

    def get(self, request: Request, name: str, version: str | None = None) -> JsonResponse:
        address = services.parse_address(name)
        with addressing.serving(address, version) as serving:
            signature = serving.signature
            return JsonResponse(
                {
                    "name": name,
                    "versions": [serving.id],
                    "platform": "tensorflow",
                    "inputs": [_tensor_meta(spec, signature.batched) for spec in signature.inputs],
                    "outputs": [
                        _tensor_meta(spec, signature.batched)
                        for spec in addressing.output_specs(serving, address, signature)
                    ],
                }
            )


class ModelReadyView(ProtocolView):
    """``GET /v2/models/<name>[/versions/<v>]/ready``: 200 when that version serves, else 400."""

    def get(self, request: Request, name: str, version: str | None = None) -> JsonResponse:
        ready = addressing.model_ready(services.parse_address(name), version)  # unknown app or model: 404
        return JsonResponse({"name": name, "ready": ready}, status=200 if ready else 400)


class InferView(ProtocolView):
    """``POST /v2/models/<name>[/versions/<v>]/infer``."""

    def post(self, request: Request, name: str, version: str | None = None) -> HttpResponse:
        parsed = v2tensors.parse_body(
            request.body,
            header_length=request.headers.get(v2tensors.HEADER_LENGTH),
            encoding=request.headers.get("Content-Encoding"),
            max_bytes=yyai_settings.MAX_BODY_BYTES,
            max_depth=yyai_settings.MAX_JSON_DEPTH,
        )
        inputs = v2tensors.read_inputs(
            parsed, max_bytes=yyai_settings.MAX_BODY_BYTES, max_strings=yyai_settings.MAX_STRING_ELEMENTS
        )
        wanted, binary = _requested_outputs(parsed.header)
        parameters = v2tensors.parameters_of(parsed.header)
        result = services.infer(
            services.InferRequest(address=name, version=version, inputs=inputs, outputs=tuple(wanted) or None)
        )
        outputs = result.tensors()
        if not wanted and parameters.get("binary_data_output"):
            binary = set(outputs)
        tensors, tail = v2tensors.encode_outputs(outputs, binary)
        body = {"model_name": name, "model_version": result.version.id, "outputs": tensors}
        if "id" in parsed.header:
            body["id"] = parsed.header["id"]
        head = json.dumps(body).encode()
        if not tail:
            return HttpResponse(head, content_type="application/json")
        response = HttpResponse(head + tail, content_type="application/octet-stream")
        response[v2tensors.HEADER_LENGTH] = str(len(head))
        return response


def _requested_outputs(header: dict) -> tuple[list[str], set[str]]:
    """Names in the request's ``outputs`` (empty: all), and which of them want binary data."""
    requested = header.get("outputs") or []
    if not isinstance(requested, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in requested
    ):
        raise ProtocolError("'outputs' must be a list of objects with a 'name'")
    names = [o["name"] for o in requested]
    binary = set()
    for output in requested:
        parameters = output.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise ProtocolError(f"output '{output['name']}': 'parameters' must be a JSON object")
        if (parameters or {}).get("binary_data"):
            binary.add(output["name"])
    return names, binary


urlpatterns = [
    re_path(r"^v2/?$", ServerMetadataView.as_view(), name="v2-server"),
    re_path(r"^v2/health/live$", LiveView.as_view(), name="v2-live"),
    re_path(r"^v2/health/ready$", ServerReadyView.as_view(), name="v2-ready"),
    re_path(rf"^v2/models/{NAME}{VERSION}$", ModelMetadataView.as_view(), name="v2-model"),
    re_path(rf"^v2/models/{NAME}{VERSION}/ready$", ModelReadyView.as_view(), name="v2-model-ready"),
    re_path(rf"^v2/models/{NAME}{VERSION}/infer$", InferView.as_view(), name="v2-infer"),
]
