"""TF Serving's REST API, field for field: ``/v1/models/<name>[/versions/<v>]``.

* ``POST ...:predict`` takes ``instances`` (row format) or ``inputs`` (columnar),
  numbers or ``{"b64": "<image>"}`` values, and answers ``predictions`` or
  ``outputs``: a bare list when the model name addresses one output, else
  keyed by output name (TF Serving's multi-output rule);
* ``POST ...:classify`` / ``...:regress`` take ``examples`` (and ``context``) of one
  feature each and answer ``{"result": ...}`` for one classifier / regressor;
* ``GET /v1/models/<name>`` is ``model_version_status``; ``.../metadata`` the signature_def.

Errors are ``{"error": "<message>"}`` with the canonical HTTP status.
Model names and versions: see :mod:`yyai.compat.servables` and docs/protocols.md.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from django.conf import settings
from django.http import JsonResponse
from django.urls import re_path
from rest_framework.request import Request

from yyai.compat import protos, servables
from yyai.compat.http import ProtocolError, ProtocolView
from yyai.compat.servables import Target
from yyai.runtime import preprocess
from yyai.runtime.servable import ServingVersion

NAME = rf"(?P<name>{servables.NAME_PATTERN})"
VERSION = r"(?:/versions/(?P<version>\d+))?"


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"b64"}


def _unwrap_named(value: Any, where: str) -> Any:
    """``{"<input name>": v}`` -> ``v``; the app has one input, so any one name is accepted."""
    if isinstance(value, dict) and not _is_b64(value):
        if len(value) != 1:
            raise ProtocolError(f"{where} names {len(value)} inputs ({', '.join(map(str, value))}); "
                                f"the model has one input, '{servables.INPUT_NAME}'")
        return next(iter(value.values()))
    return value


def batch_from_values(version: ServingVersion, rows: list) -> np.ndarray:
    """Rows of numbers, or of ``{"b64": ...}`` images, as one model batch."""
    if not isinstance(rows, list) or not rows:
        raise ProtocolError("the input must be a non-empty list with one entry per row")
    images = [_is_b64(r) for r in rows]
    if any(images):
        if not all(images):
            raise ProtocolError("mixing {\"b64\": ...} images and numbers in one input is not supported")
        decoded = [preprocess.decode_base64(r["b64"], max_bytes=settings.YYAI_MAX_IMAGE_BYTES) for r in rows]
        return servables.image_batch(version, decoded)
    return servables.tensor_batch(version, rows)


class TFServingView(ProtocolView):
    """Shared parts: the model name, the version in the URL, the serving version."""

    def serving(self, name: str, version: str | None):
        return servables.serving(servables.parse_name(name), version)


class PredictView(TFServingView):
    """``POST /v1/models/<name>[/versions/<v>]:predict``."""

    def post(self, request: Request, name: str, version: str | None = None) -> JsonResponse:
        body = self.read_json()
        if not isinstance(body, dict):
            raise ProtocolError("the body must be a JSON object")
        protos.check_signature(body.get("signature_name", ""))
        if ("instances" in body) == ("inputs" in body):
            raise ProtocolError("Missing 'inputs' or 'instances' key" if "inputs" not in body
                                else "Both 'inputs' and 'instances' keys are present; send only one")
        target = servables.parse_name(name)
        with self.serving(name, version) as serving:
            if "instances" in body:
                rows = body["instances"]
                rows = [_unwrap_named(r, "an instance") for r in rows] if isinstance(rows, list) else rows
            else:
                rows = _unwrap_named(body["inputs"], "'inputs'")
                rows = [rows] if _is_b64(rows) else rows
            outputs = servables.run(serving, target, batch_from_values(serving, rows))
        lists = {key: value.tolist() for key, value in outputs.items()}
        single = next(iter(lists.values())) if len(lists) == 1 else None
        if "inputs" in body:
            return JsonResponse({"outputs": single if single is not None else lists})
        if single is not None:
            return JsonResponse({"predictions": single})
        return JsonResponse({"predictions": [dict(zip(lists, row)) for row in zip(*lists.values())]})


class ClassifyRegressView(TFServingView):
    """``POST ...:classify`` and ``...:regress`` for a one-model target of the matching kind."""

    verb = "classify"

    def post(self, request: Request, name: str, version: str | None = None) -> JsonResponse:
        body = self.read_json()
        if not isinstance(body, dict) or not isinstance(body.get("examples"), list) or not body["examples"]:
            raise ProtocolError("the body must be a JSON object with a non-empty 'examples' list")
        protos.check_signature(body.get("signature_name", ""))
        context = body.get("context") or {}
        target = servables.parse_name(name)
        with self.serving(name, version) as serving:
            kind, index = servables.kind_of(serving, target)
            wanted = "classification" if self.verb == "classify" else "regression"
            if kind != wanted:
                raise ProtocolError(f"'{name}' is a {kind} model; :{self.verb} needs a {wanted} model")
            rows = [self._feature(serving, {**context, **e} if isinstance(e, dict) else e) for e in body["examples"]]
            output = next(iter(servables.run(serving, target, batch_from_values(serving, rows)).values()))
            spec = serving.spec.output
        rows2d = output.reshape(len(output), -1).astype(float)
        if self.verb == "regress":
            if rows2d.shape[1] != 1:
                raise ProtocolError(f"'{name}' gives {rows2d.shape[1]} values per example; :regress needs one")
            return JsonResponse({"result": rows2d[:, 0].tolist()})
        if rows2d.shape[1] == 1:  # a binary sigmoid: p is the probability of the second label
            rows2d = np.concatenate([1.0 - rows2d, rows2d], axis=1)
        labels = spec.labels or tuple(str(i) for i in range(rows2d.shape[1]))
        return JsonResponse({"result": [[[label, score] for label, score in zip(labels, row)]
                                        for row in rows2d.tolist()]})

    @staticmethod
    def _feature(serving: ServingVersion, example: Any) -> Any:
        """The one feature of an example, reshaped to the model's input (tf.Example features are flat)."""
        if not isinstance(example, dict) or len(example) != 1:
            raise ProtocolError("each example must be a JSON object with exactly one feature (the model's input)")
        value = next(iter(example.values()))
        if _is_b64(value) or (isinstance(value, list) and len(value) == 1 and _is_b64(value[0])):
            return value if _is_b64(value) else value[0]
        flat = np.asarray(value if isinstance(value, list) else [value], dtype=object).ravel()
        size = int(np.prod(serving.input_shape))
        if flat.size != size:
            raise ProtocolError(f"a feature has {flat.size} values; the model takes {size} "
                                f"(shape {list(serving.input_shape)})")
        return flat.reshape(serving.input_shape).tolist()


class RegressView(ClassifyRegressView):
    verb = "regress"


class StatusView(TFServingView):
    """``GET /v1/models/<name>[/versions/<v>]``: TF Serving's model_version_status."""

    def get(self, request: Request, name: str, version: str | None = None) -> JsonResponse:
        return JsonResponse(protos.to_json(protos.model_status(servables.parse_name(name), version)))


class MetadataView(TFServingView):
    """``GET /v1/models/<name>[/versions/<v>]/metadata``: model_spec and signature_def."""

    def get(self, request: Request, name: str, version: str | None = None) -> JsonResponse:
        target: Target = servables.parse_name(name)
        with self.serving(name, version) as serving:
            return JsonResponse({
                "model_spec": protos.to_json(protos.model_spec(serving, target)),
                "metadata": {"signature_def": protos.to_json(protos.signature_def_map(serving, target))},
            })


urlpatterns = [
    re_path(rf"^v1/models/{NAME}{VERSION}:predict$", PredictView.as_view(), name="tfs-predict"),
    re_path(rf"^v1/models/{NAME}{VERSION}:classify$", ClassifyRegressView.as_view(), name="tfs-classify"),
    re_path(rf"^v1/models/{NAME}{VERSION}:regress$", RegressView.as_view(), name="tfs-regress"),
    re_path(rf"^v1/models/{NAME}{VERSION}/metadata$", MetadataView.as_view(), name="tfs-metadata"),
    re_path(rf"^v1/models/{NAME}{VERSION}$", StatusView.as_view(), name="tfs-status"),
]
