"""KServe v2 / Open Inference Protocol over REST: ``/v2/...``, as Triton's clients call it.

* ``GET /v2`` server metadata; ``/v2/health/live`` and ``/v2/health/ready``
  (200 true, 400 false, as the protocol says);
* ``GET /v2/models/<name>[/versions/<v>]`` model metadata; ``.../ready``;
* ``POST .../infer``: one input (any name; numbers of any supported datatype,
  flat or nested, or ``BYTES`` encoded images), JSON or binary tensors, optional
  ``outputs`` selection (each optionally binary), ``id`` echoed. Outputs are FP32.

Errors are ``{"error": "<message>"}`` with the canonical HTTP status.
"""
from __future__ import annotations

import json

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.urls import re_path
from rest_framework.permissions import AllowAny
from rest_framework.request import Request

from yyai.compat import servables, v2tensors
from yyai.compat.http import ProtocolError, ProtocolView
from yyai.runtime.servable import ServingVersion, State
from yyai.serving import get_registry

NAME = rf"(?P<name>{servables.NAME_PATTERN})"
VERSION = r"(?:/versions/(?P<version>[A-Za-z0-9_.-]+))?"
SERVER_NAME = "aiserver"
SERVER_VERSION = "1.0"
EXTENSIONS = ["binary_tensor_data"]


def _tensor_meta(name: str, shape: tuple[int, ...]) -> dict:
    return {"name": name, "datatype": "FP32", "shape": [-1, *shape]}


class ServerMetadataView(ProtocolView):
    """``GET /v2``."""

    permission_classes = [AllowAny]
    throttle_classes: list = []

    def get(self, request: Request) -> JsonResponse:
        return JsonResponse({"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": EXTENSIONS})


class LiveView(ProtocolView):
    """``GET /v2/health/live``: the process answers."""

    permission_classes = [AllowAny]
    throttle_classes: list = []

    def get(self, request: Request) -> JsonResponse:
        return JsonResponse({"live": True})


class ServerReadyView(ProtocolView):
    """``GET /v2/health/ready``: every app has an AVAILABLE version."""

    permission_classes = [AllowAny]
    throttle_classes: list = []

    def get(self, request: Request) -> JsonResponse:
        ready = all(util.state is State.AVAILABLE for util in get_registry().all())
        return JsonResponse({"ready": ready}, status=200 if ready else 400)


class ModelMetadataView(ProtocolView):
    """``GET /v2/models/<name>[/versions/<v>]``."""

    def get(self, request: Request, name: str, version: str | None = None) -> JsonResponse:
        target = servables.parse_name(name)
        with servables.serving(target, version) as serving:
            return JsonResponse({
                "name": name,
                "versions": [serving.id],
                "platform": "tensorflow",
                "inputs": [_tensor_meta(servables.INPUT_NAME, serving.input_shape)],
                "outputs": [_tensor_meta(out, servables.output_shape(serving, out))
                            for out in servables.output_names(serving, target)],
            })


class ModelReadyView(ProtocolView):
    """``GET /v2/models/<name>[/versions/<v>]/ready``: 200 when that version serves, else 400."""

    def get(self, request: Request, name: str, version: str | None = None) -> JsonResponse:
        target = servables.parse_name(name)
        util = servables.get_util(target)  # unknown app: 404
        current = util.current
        ready = current is not None
        if ready:
            servables.model_indices(current, target)  # unknown model: 404
            ready = version in (None, "") or version in (current.id, str(servables.version_number(current.id)))
        return JsonResponse({"name": name, "ready": ready}, status=200 if ready else 400)


class InferView(ProtocolView):
    """``POST /v2/models/<name>[/versions/<v>]/infer``."""

    def post(self, request: Request, name: str, version: str | None = None) -> HttpResponse:
        parsed = v2tensors.parse_body(request.body, header_length=request.headers.get(v2tensors.HEADER_LENGTH),
                                      encoding=request.headers.get("Content-Encoding"),
                                      max_bytes=settings.YYAI_MAX_BODY_BYTES)
        inputs = v2tensors.read_inputs(parsed)
        if len(inputs) != 1:
            raise ProtocolError(f"the model takes one input ('{servables.INPUT_NAME}'); got {len(inputs)}")
        wanted, binary = _requested_outputs(parsed.header)
        target = servables.parse_name(name)
        with servables.serving(target, version) as serving:
            outputs = servables.run(serving, target, _batch(serving, inputs[0][1]), wanted or None)
            version_id = serving.id
        if not wanted and (parsed.header.get("parameters") or {}).get("binary_data_output"):
            binary = set(outputs)
        tensors, tail = v2tensors.encode_outputs(outputs, binary)
        body = {"model_name": name, "model_version": version_id, "outputs": tensors}
        if "id" in parsed.header:
            body["id"] = parsed.header["id"]
        head = json.dumps(body).encode()
        if not tail:
            return HttpResponse(head, content_type="application/json")
        response = HttpResponse(head + tail, content_type="application/octet-stream")
        response[v2tensors.HEADER_LENGTH] = str(len(head))
        return response


def _batch(serving: ServingVersion, value):
    if isinstance(value, list):  # BYTES: encoded images
        return servables.image_batch(serving, value)
    return servables.tensor_batch(serving, value)


def _requested_outputs(header: dict) -> tuple[list[str], set[str]]:
    """Names in the request's ``outputs`` (empty: all), and which of them want binary data."""
    requested = header.get("outputs") or []
    if not isinstance(requested, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str)
                                                  for o in requested):
        raise ProtocolError("'outputs' must be a list of objects with a 'name'")
    names = [o["name"] for o in requested]
    binary = {o["name"] for o in requested if (o.get("parameters") or {}).get("binary_data")}
    return names, binary


urlpatterns = [
    re_path(r"^v2/?$", ServerMetadataView.as_view(), name="v2-server"),
    re_path(r"^v2/health/live$", LiveView.as_view(), name="v2-live"),
    re_path(r"^v2/health/ready$", ServerReadyView.as_view(), name="v2-ready"),
    re_path(rf"^v2/models/{NAME}{VERSION}$", ModelMetadataView.as_view(), name="v2-model"),
    re_path(rf"^v2/models/{NAME}{VERSION}/ready$", ModelReadyView.as_view(), name="v2-model-ready"),
    re_path(rf"^v2/models/{NAME}{VERSION}/infer$", InferView.as_view(), name="v2-infer"),
]
