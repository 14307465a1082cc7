"""The other seed projects' clients: ``/<app>/predictor`` and ``/<app>/infer``.

* ``POST /<app>/predictor``: the body is the image as base64 text (a data URL
  is fine), or any image input of the canonical API (JSON ``image``, a multipart
  upload, ``imgPath``). The answer body is base64 text of a JPEG: that
  image, at its own size, with each model's result written on it; when the
  answer marks regions (a handler's entries with a ``box``, as the ``faces``
  app's), each box is drawn with its own results beside it. Errors: ``{"error": ...}``.
* ``POST /<app>/infer``: multipart file field ``img``, or any image input of the
  canonical API. The answer is
  ``{"code": 0, "message": "success", "data": <the canonical predict body>}``,
  or ``{"code": -1, "message": "<reason>"}`` with the canonical error status.

Both run :func:`yyai.services.predict`, like every other route.
"""

from __future__ import annotations

import base64
import re

import cv2
import numpy as np
from django.http import HttpResponse, JsonResponse
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request

from yyai import services
from yyai.api.inputs import read_predict_input
from yyai.api.parsers import BoundedJSONParser
from yyai.compat.http import ProtocolError, ProtocolView
from yyai.conf import yyai_settings
from yyai.fleet.process_registry import get_registry
from yyai.runtime import preprocess

TEXT_COLOR = (0, 255, 255)  # BGR yellow on a dark band
BAND_COLOR = (0, 0, 0)
BOX_COLOR = (0, 255, 0)


CANONICAL_TYPES = ("application/json", "multipart/form-data")
CANONICAL_FORM = re.compile(rb"^(img|image|imgPath)=")  # base64 text has no '=' but its final padding


def _predict(app: str, image: bytes) -> services.PredictionResult:
    return services.predict(app=app, images=[image])


def canonical_image(request: Request) -> bytes:
    """The one image of a canonical predict body (JSON, multipart or form); ProtocolError for anything else."""
    given = read_predict_input(request)
    if not given.images or len(given.images) != 1 or given.inputs is not None:
        raise ProtocolError("this route runs the app on one image: send 'image' (base64), a file 'img' or 'imgPath'")
    return given.images[0]


def result_lines(result: list[dict]) -> list[str]:
    """One line per model output: ``a.h5: 3.27``, ``c.h5: male 0.88`` or ``f.keras/age: 31.2``."""
    lines = []
    for entry in result:
        if "label" in entry:
            lines.append(f"{entry['name']}: {entry['label']} {entry['score']:.2f}")
        elif "outputs" in entry:
            lines += [f"{entry['name']}/{name}: {_short(value)}" for name, value in entry["outputs"].items()]
        else:
            lines.append(f"{entry['name']}: {_short(entry['value'])}")
    return lines


def _short(value) -> str:
    return str(value)[:40] if isinstance(value, (list, dict)) else str(value)


def answer_lines(body: dict) -> list[str]:
    """The lines of a handler's answer without regions: one per key, values shortened."""
    return [
        f"{key}: {_short(value)}" for key, value in body.items() if key not in ("app", "version", "demo", "elapsed_ms")
    ]


def regions(body: dict) -> list[dict]:
    """The entries of an answer that mark a region of the image: objects with ``"box": [x, y, w, h]``."""
    return [
        entry
        for value in body.values()
        if isinstance(value, list)
        for entry in value
        if isinstance(entry, dict) and _is_box(entry.get("box"))
    ]


def _is_box(box) -> bool:
    return isinstance(box, list) and len(box) == 4 and all(type(v) is int and v >= 0 for v in box)


def annotate(image: np.ndarray, lines: list[str]) -> np.ndarray:
    """Write ``lines`` at the top left of a BGR image, on a dark band, scaled to the image."""
    image = image.copy()
    _write(image, lines, 0, 0, _scale(image))
    return image


def draw_regions(image: np.ndarray, entries: list[dict]) -> np.ndarray:
    """Draw each entry's box on a BGR image, and under it its score and every app's results."""
    image = image.copy()
    scale = _scale(image) / 2  # several labels share the photo
    for entry in entries:
        x, y, w, h = entry["box"]
        cv2.rectangle(image, (x, y), (x + w, y + h), BOX_COLOR, max(2, round(scale * 3)))
        lines = [f"score {entry['score']}"] if isinstance(entry.get("score"), (int, float)) else []
        for results in (entry.get("apps") or {}).values():
            lines += result_lines(results) if isinstance(results, list) else []
        _write(image, lines, x, y + h + 2, scale)
    return image


def _scale(image: np.ndarray) -> float:
    return max(0.3, min(image.shape[:2]) / 500)


def _write(image: np.ndarray, lines: list[str], x: int, y: int, scale: float) -> None:
    """Each line on its own dark band, from ``(x, y)`` down; moved left where it would leave the image."""
    width = image.shape[1]
    thickness = max(1, round(scale * 2))
    for line in lines:
        (w, h), base = cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        left = max(0, min(x, width - w - 8))
        cv2.rectangle(image, (left, y), (min(width, left + w + 8), y + h + base + 8), BAND_COLOR, cv2.FILLED)
        cv2.putText(
            image, line, (left + 4, y + h + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT_COLOR, thickness, cv2.LINE_AA
        )
        y += h + base + 8


class PredictorView(ProtocolView):
    """``POST /<app>/predictor``: base64 image in, base64 annotated JPEG out."""

    parser_classes = [BoundedJSONParser, MultiPartParser, FormParser]  # for the canonical bodies only

    def post(self, request: Request, app: str) -> HttpResponse:
        get_registry().get(app)  # 404 before reading the body
        image = canonical_image(request) if self._canonical(request) else self._text()
        result = _predict(app, image)
        photo = preprocess.decode_image(image, max_pixels=yyai_settings.MAX_IMAGE_PIXELS)
        if result.answer is None:
            drawn = annotate(photo, result_lines(result.rows[0]))
        else:
            body = result.to_body(many=False)
            marked = regions(body)
            drawn = draw_regions(photo, marked) if marked else annotate(photo, answer_lines(body))
        ok, jpeg = cv2.imencode(".jpg", drawn, [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            raise ProtocolError("the annotated image could not be encoded as JPEG")
        response = HttpResponse(base64.b64encode(jpeg.tobytes()), content_type="text/plain; charset=ascii")
        response["X-Model-Version"] = result.version
        return response

    @staticmethod
    def _canonical(request: Request) -> bool:
        """JSON, multipart, or a form with a canonical field (``curl -d imgPath=...``); else base64 text, even
        under a form's content type (``curl -d @image.b64`` sends one)."""
        return request.content_type.startswith(CANONICAL_TYPES) or (
            request.content_type.startswith("application/x-www-form-urlencoded")
            and CANONICAL_FORM.match(request.body) is not None
        )

    def _text(self) -> bytes:
        """The seed client's body: the image as base64 text (a data URL is fine)."""
        try:
            text = self.request.body.decode("ascii")
        except UnicodeDecodeError:
            raise ProtocolError(
                "the body must be the image as base64 text, or a canonical predict body (JSON 'image', a file 'img')"
            ) from None
        return preprocess.decode_base64(text, max_bytes=yyai_settings.MAX_IMAGE_BYTES)


class InferView(ProtocolView):
    """``POST /<app>/infer``: multipart ``img`` (or any canonical image input) in, ``{"code", "message", "data"}``
    out."""

    parser_classes = [MultiPartParser, FormParser, BoundedJSONParser]

    def error_body(self, message: str, code: str) -> dict:
        return {"code": -1, "message": message}

    def post(self, request: Request, app: str) -> JsonResponse:
        get_registry().get(app)
        result = _predict(app, canonical_image(request))
        return JsonResponse({"code": 0, "message": "success", "data": result.to_body(many=False)})
