"""TF Serving's REST API, field for field: ``/v1/models/<name>[/versions/<v>]``; a codec over the data plane.

* ``POST ...:predict`` takes ``instances`` (row format: a value per row, or an
  object naming the inputs per row) or ``inputs`` (columnar: an object naming
  the inputs, or one tensor for a one-input signature), and an optional
  ``signature_name``. ``{"b64": "<base64>"}`` is a binary string: the bytes of a
  string input, or an image file for an image input (decoded and preprocessed
  as the app's manifest says). Answers ``predictions`` (row format: a list per
  row, or an object per row when there are several outputs) or ``outputs``
  (columnar: the tensor, or an object of tensors), as TF Serving does;
* ``POST ...:classify`` / ``...:regress`` take ``examples`` (and ``context``) of one
  feature each and answer ``{"result": ...}`` for one classifier / regressor;
* ``GET /v1/models/<name>`` is ``model_version_status``; ``.../metadata`` the
  ``signature_def`` map, every signature included.

Errors are ``{"error": "<message>"}`` with the canonical HTTP status.
Model names and versions: see :mod:`yyai.services.dataplane` and docs/protocols.md.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from django.http import JsonResponse
from django.urls import re_path
from rest_framework.request import Request

from yyai import services
from yyai.compat import protos
from yyai.compat.http import ProtocolError, ProtocolView
from yyai.conf import yyai_settings
from yyai.runtime import preprocess
from yyai.runtime.errors import BadTensor
from yyai.runtime.servable import ServingVersion
from yyai.runtime.tensors import EncodedImage
from yyai.services import addressing, dataplane

NAME = rf"(?P<name>{protos.NAME_PATTERN})"
VERSION = r"(?:/versions/(?P<version>\d+)|/labels/(?P<label>[a-z][a-z0-9_-]{0,31}))?"  # a number, or a label


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"b64"}


def decode_b64(value: Any) -> Any:
    """``{"b64": "..."}`` anywhere in a JSON value -> :class:`EncodedImage` bytes (TF Serving's binary strings)."""
    if _is_b64(value):
        return EncodedImage(preprocess.decode_base64(value["b64"], max_bytes=yyai_settings.MAX_IMAGE_BYTES))
    if isinstance(value, list):
        return [decode_b64(item) for item in value]
    if isinstance(value, dict):
        return {key: decode_b64(item) for key, item in value.items()}
    return value


def json_tensor(name: str, value: np.ndarray | list[np.ndarray]) -> Any:
    """A tensor (or a list of rows) as TF Serving writes it: nested lists; strings as text, base64 for
    names ending ``_bytes`` or bytes that are not UTF-8."""
    if isinstance(value, list):
        return [json_tensor(name, row) for row in value]
    if value.dtype == object:
        encode = _b64_text if name.endswith("_bytes") else _text
        return np.frompyfunc(encode, 1, 1)(value).tolist() if value.ndim else encode(value.item())
    return value.tolist()


def _text(value: bytes) -> Any:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return _b64_text(value)


def _b64_text(value: bytes) -> dict:
    return {"b64": base64.b64encode(value).decode("ascii")}


class TFServingView(ProtocolView):
    """Shared part: the JSON body as an object."""

    def read_object(self) -> dict:
        body = self.read_json()
        if not isinstance(body, dict):
            raise ProtocolError("the body must be a JSON object")
        return body


def _signature_name(body: dict) -> str | None:
    name = body.get("signature_name") or None
    if name is not None and not isinstance(name, str):
        raise ProtocolError("'signature_name' must be a string")
    return name


class PredictView(TFServingView):
    """``POST /v1/models/<name>[/versions/<v> | /labels/<label>]:predict``."""

    def post(self, request: Request, name: str, version: str | None = None, label: str | None = None) -> JsonResponse:
        body = self.read_object()
        if ("instances" in body) == ("inputs" in body):
            raise ProtocolError(
                "Missing 'inputs' or 'instances' key"
                if "inputs" not in body
                else "Both 'inputs' and 'instances' keys are present; send only one"
            )
        rows = "instances" in body
        limit = yyai_settings.MAX_ROWS_PER_REQUEST
        if rows and isinstance(body["instances"], list) and len(body["instances"]) > limit:
            raise BadTensor(f"'instances' has {len(body['instances'])} rows; the limit is {limit}")  # none decoded
        result = services.infer(
            services.InferRequest(
                address=name,
                version=version,
                label=label,
                signature=_signature_name(body),
                instances=decode_b64(body["instances"]) if rows else None,
                inputs=None if rows else decode_b64(body["inputs"]),
            )
        )
        if not rows:
            outputs = {key: json_tensor(key, value) for key, value in result.tensors().items()}
            return JsonResponse({"outputs": next(iter(outputs.values())) if len(outputs) == 1 else outputs})
        outputs = {key: json_tensor(key, value) for key, value in result.outputs.items()}
        single = next(iter(outputs.values())) if len(outputs) == 1 else None
        if single is not None:
            return JsonResponse({"predictions": single})
        return JsonResponse({"predictions": [dict(zip(outputs, row)) for row in zip(*outputs.values())]})


class ClassifyRegressView(TFServingView):
    """``POST ...:classify`` and ``...:regress`` for a one-model, one-output address of the matching kind."""

    verb = "classify"

    def post(self, request: Request, name: str, version: str | None = None, label: str | None = None) -> JsonResponse:
        body = self.read_object()
        if not isinstance(body.get("examples"), list) or not body["examples"]:
            raise ProtocolError("the body must be a JSON object with a non-empty 'examples' list")
        context = body.get("context") or {}
        if not isinstance(context, dict):
            raise ProtocolError("'context' must be a JSON object of features")
        address = services.parse_address(name)
        with addressing.serving(address, version, label=label) as serving:
            index = self._model(serving, address)
            kind = serving.kinds[index]
            wanted = "classification" if self.verb == "classify" else "regression"
            if kind != wanted:
                raise ProtocolError(f"'{name}' is a {kind} model; :{self.verb} needs a {wanted} model")
            rows = [self._feature(serving, {**context, **e} if isinstance(e, dict) else e) for e in body["examples"]]
            labels = serving.spec.output.labels
            result = dataplane.infer_on(
                serving, address, services.InferRequest(address=name, instances=decode_b64(rows))
            )
        (output,) = result.outputs.values()
        rows2d = np.asarray(output, dtype=float).reshape(len(output), -1)
        if self.verb == "regress":
            if rows2d.shape[1] != 1:
                raise ProtocolError(f"'{name}' gives {rows2d.shape[1]} values per example; :regress needs one")
            return JsonResponse({"result": rows2d[:, 0].tolist()})
        if rows2d.shape[1] == 1:  # a binary sigmoid: p is the probability of the second label
            rows2d = np.concatenate([1.0 - rows2d, rows2d], axis=1)
        labels = labels or tuple(str(i) for i in range(rows2d.shape[1]))
        return JsonResponse(
            {"result": [[[label, score] for label, score in zip(labels, row)] for row in rows2d.tolist()]}
        )

    @staticmethod
    def _model(serving: ServingVersion, address: services.Address) -> int:
        indices = addressing.model_indices(serving, address)
        if len(indices) != 1:
            names = ", ".join(f"{address.app}.{n}" for n in addressing.unique_names([m.name for m in serving.models]))
            raise ProtocolError(f"'{address.name}' has several models; address one of: {names}")
        signature = serving.models[indices[0]].signature
        if len(signature.inputs) != 1 or len(signature.outputs) != 1:
            raise ProtocolError(
                f"'{address.name}' has {len(signature.inputs)} inputs and {len(signature.outputs)} "
                f"outputs; :classify and :regress need one of each (use :predict)"
            )
        return indices[0]

    @staticmethod
    def _feature(serving: ServingVersion, example: Any) -> Any:
        """The one feature of an example, reshaped to the model's input (tf.Example features are flat)."""
        if not isinstance(example, dict) or len(example) != 1:
            raise ProtocolError("each example must be a JSON object with exactly one feature (the model's input)")
        value = next(iter(example.values()))
        if _is_b64(value) or (isinstance(value, list) and len(value) == 1 and _is_b64(value[0])):
            return value if _is_b64(value) else value[0]
        spec = serving.signature.inputs[0]
        if not spec.fully_defined:
            return value
        flat = np.asarray(value if isinstance(value, list) else [value], dtype=object).ravel()
        size = spec.known_elements()
        if flat.size != size:
            raise ProtocolError(f"a feature has {flat.size} values; the model takes {size} (shape {spec.shape_text()})")
        return flat.reshape(spec.shape).tolist()


class RegressView(ClassifyRegressView):
    verb = "regress"


class StatusView(TFServingView):
    """``GET /v1/models/<name>[/versions/<v>]``: TF Serving's model_version_status."""

    def get(self, request: Request, name: str, version: str | None = None, label: str | None = None) -> JsonResponse:
        return JsonResponse(protos.to_json(protos.model_status(services.parse_address(name), version, label)))


class MetadataView(TFServingView):
    """``GET /v1/models/<name>[/versions/<v>]/metadata``: model_spec and signature_def."""

    def get(self, request: Request, name: str, version: str | None = None, label: str | None = None) -> JsonResponse:
        address = services.parse_address(name)
        with addressing.serving(address, version, label=label) as serving:
            return JsonResponse(
                {
                    "model_spec": protos.to_json(protos.model_spec(serving, address)),
                    "metadata": {"signature_def": protos.to_json(protos.signature_def_map(serving, address))},
                }
            )


urlpatterns = [
    re_path(rf"^v1/models/{NAME}{VERSION}:predict$", PredictView.as_view(), name="tfs-predict"),
    re_path(rf"^v1/models/{NAME}{VERSION}:classify$", ClassifyRegressView.as_view(), name="tfs-classify"),
    re_path(rf"^v1/models/{NAME}{VERSION}:regress$", RegressView.as_view(), name="tfs-regress"),
    re_path(rf"^v1/models/{NAME}{VERSION}/metadata$", MetadataView.as_view(), name="tfs-metadata"),
    re_path(rf"^v1/models/{NAME}{VERSION}$", StatusView.as_view(), name="tfs-status"),
]
