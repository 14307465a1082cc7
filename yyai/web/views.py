"""Views of the web page. The page talks to the canonical API; nothing here predicts or reloads."""

from __future__ import annotations

import math
import mimetypes

from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from yyai import selectors
from yyai.api.exceptions import json_error, json_methods
from yyai.api.inputs import sample_path
from yyai.api.permissions import CanPredict
from yyai.fleet.process_registry import get_registry
from yyai.runtime.errors import AppNotFound
from yyai.runtime.model_util import ModelUtil
from yyai.runtime.request import image_input
from yyai.runtime.signature import Signature, TensorSpec

RELOAD_HISTORY_ROWS = 20
EXAMPLE_ELEMENTS = 4096


@json_methods("GET", "HEAD")
def index(request: HttpRequest) -> HttpResponse:
    """``GET /``: every app with its state, version and models; a try-it form; staff get reloads.

    The page's script reads ``page-data`` (JSON): per app its predict, reload
    and sample URLs, whether it has a sample image, its class labels, whether
    it takes images, and a JSON request to start from (or None).
    """
    apps = [selectors.app_status(app=row, staff=request.user.is_staff) for row in selectors.app_queryset()]
    registry = get_registry()
    page_data = {
        "reloads_url": reverse("reloadevent-list"),
        "history_rows": RELOAD_HISTORY_ROWS,
        "apps": {app["name"]: _app_data(registry.get(app["name"])) for app in apps},
    }
    staff = request.user.is_staff
    return render(
        request,
        "yyai/index.html",
        {
            "apps": apps,
            "page_data": page_data,
            "can_predict": CanPredict().has_permission(request, None),
            "reloads": selectors.reload_event_list()[:RELOAD_HISTORY_ROWS] if staff else [],
        },
    )


@json_methods("GET", "HEAD")
def sample(request: HttpRequest, app: str) -> HttpResponse:
    """``GET /samples/<app>``: the app's sample image (the one GET predict runs on)."""
    try:
        path = sample_path(get_registry().get(app).app_dir)
    except AppNotFound as exc:
        return json_error(exc.message, exc.code, 404)
    if path is None:
        return json_error(f"app '{app}' has no sample image", "no_sample", 404)
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path.open("rb"), content_type=content_type)


def _app_data(util: ModelUtil) -> dict:
    version = util.current
    labels = version.spec.output.labels if version is not None else None
    return {
        "predict_url": reverse("app-predict", kwargs={"app": util.name}),
        "reload_url": reverse("app-reload", kwargs={"app": util.name}),
        "sample_url": reverse("web-sample", kwargs={"app": util.name}),
        "has_sample": sample_path(util.app_dir) is not None,
        "labels": list(labels) if labels else None,
        "takes_images": bool(version and version.signature and image_input(version.signature, version.spec.input)),
        "example": _example(version.signature) if version is not None and version.signature else None,
    }


def _example(signature: Signature) -> dict | None:
    """A predict body of one row of zeros (empty strings for text) for every input, columnar (``inputs``), or
    None when it would be larger than EXAMPLE_ELEMENTS values: a start for the page's JSON box."""
    sizes = [math.prod(1 if d is None else d for d in spec.shape or ()) for spec in signature.inputs]
    if sum(sizes) > EXAMPLE_ELEMENTS:
        return None
    return {"inputs": {spec.name: _zeros(spec, signature.batched) for spec in signature.inputs}}


def _zeros(spec: TensorSpec, batched: bool):
    fill = "" if spec.dtype == "string" else False if spec.dtype == "bool" else 0 if "int" in spec.dtype else 0.0
    value = fill
    for dim in reversed([1 if d is None else d for d in spec.shape or ()]):
        value = [value] * dim
    return [value] if batched else value
