"""Turn a predict request into image bytes or ready tensors.

Accepted, exactly one of (DESIGN section 5):

* multipart file field ``img`` (the seed's) or ``image``;
* JSON ``{"image": "<base64>"}`` or ``{"images": ["<base64>", ...]}``;
* JSON or form ``{"imgPath": "<path>"}``, only inside ``YYAI_IMAGE_ROOT``;
* JSON ``{"instances": [...]}``: ready tensors, no image decoding.

Limits are checked before the expensive step: the byte size of an upload or a
base64 string before decoding, the number of images before any decoding.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from django.conf import settings

from yyai.api.exceptions import ApiError
from yyai.runtime import preprocess
from yyai.runtime.errors import PayloadTooLarge

FILE_FIELDS = ("img", "image")
KEYS = ("img", "image", "images", "imgPath", "instances")
HINT = "send one of: multipart file 'img' or 'image', JSON 'image' or 'images' (base64), 'imgPath', 'instances'"
SAMPLE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass(frozen=True)
class PredictInput:
    """What to run: image bytes (``many``: answer per image) or ready tensors."""

    images: list[bytes] | None = None
    instances: Any = None
    many: bool = False


def read_predict_input(request) -> PredictInput:
    """Parse a DRF request into a PredictInput; ApiError / InputError on anything wrong."""
    return parse_predict_input(request.data, request.FILES)


def parse_predict_input(data: Any, files: Mapping[str, Any]) -> PredictInput:
    """A parsed body (JSON value or form QueryDict) and its uploaded files, as a PredictInput."""
    if not hasattr(data, "keys"):
        raise ApiError(f"the body must be a JSON object; {HINT}", code="bad_input")
    uploads = {name: files[name] for name in FILE_FIELDS if name in files}
    present = sorted({key for key in KEYS if key in data} | set(uploads))
    if not present:
        raise ApiError(f"no input found; {HINT}", code="bad_input")
    if len(present) > 1:
        raise ApiError(f"several inputs found ({', '.join(present)}); {HINT}", code="bad_input")
    key = present[0]
    if key in uploads:
        return PredictInput(images=[_read_upload(uploads[key])])
    value = data.get(key)
    if key in FILE_FIELDS:
        return PredictInput(images=[_b64(value, key)])
    if key == "images":
        value = data.getlist(key) if hasattr(data, "getlist") else value
        if not isinstance(value, list) or not value:
            raise ApiError("'images' must be a non-empty list of base64 strings", code="bad_input")
        if len(value) > settings.YYAI_MAX_BATCH:
            raise ApiError(f"'images' has {len(value)} items; the limit is {settings.YYAI_MAX_BATCH}",
                           code="payload_too_large", status=413)
        return PredictInput(images=[_b64(item, f"images[{i}]") for i, item in enumerate(value)], many=True)
    if key == "imgPath":
        return PredictInput(images=[read_image_path(value)])
    return PredictInput(instances=value, many=True)


def read_image_path(value: Any) -> bytes:
    """Bytes of a server-side image, confined to YYAI_IMAGE_ROOT by real path (symlinks resolved)."""
    root = settings.YYAI_IMAGE_ROOT
    if root is None:
        raise ApiError("'imgPath' is disabled on this server (YYAI_IMAGE_ROOT is not set)",
                       code="image_path_disabled", status=403)
    if not isinstance(value, str) or not value or "\x00" in value:
        raise ApiError("'imgPath' must be a non-empty path string", code="bad_input")
    path = (root / value).resolve()
    if not path.is_relative_to(root):
        raise ApiError("'imgPath' points outside the image root", code="path_outside_root", status=403)
    if not path.is_file():
        raise ApiError(f"no image at imgPath '{value}'", code="path_not_found", status=404)
    return _read_limited(path)


def sample_image(app_dir: Path) -> bytes:
    """The app's sample image (``sample.*``), used by GET predict."""
    for suffix in SAMPLE_SUFFIXES:
        path = app_dir / f"sample{suffix}"
        if path.is_file():
            return _read_limited(path)
    raise ApiError(f"app '{app_dir.name}' has no sample image (sample.jpg, sample.png, ...); POST an image instead",
                   code="no_sample", status=404)


def _b64(value: Any, field: str) -> bytes:
    if not isinstance(value, str):
        raise ApiError(f"'{field}' must be a base64 string", code="bad_base64")
    return preprocess.decode_base64(value, max_bytes=settings.YYAI_MAX_IMAGE_BYTES)


def _read_upload(upload) -> bytes:
    if upload.size > settings.YYAI_MAX_IMAGE_BYTES:
        raise PayloadTooLarge(f"the upload is {upload.size} bytes; the limit is {settings.YYAI_MAX_IMAGE_BYTES}")
    return upload.read()


def _read_limited(path: Path) -> bytes:
    size = path.stat().st_size
    if size > settings.YYAI_MAX_IMAGE_BYTES:
        raise PayloadTooLarge(f"the image is {size} bytes; the limit is {settings.YYAI_MAX_IMAGE_BYTES}")
    return path.read_bytes()
