"""Turn a predict request into image bytes or ready tensors.

Accepted, exactly one of (DESIGN section 5):

* multipart file field ``img`` (the seed's) or ``image``;
* JSON ``{"image": "<base64>"}`` or ``{"images": ["<base64>", ...]}``;
* JSON or form ``{"imgPath": "<path>"}``, only inside ``YYAI_IMAGE_ROOT``;
* JSON ``{"instances": [...]}``: rows of ready tensors (a dict per row for several inputs);
* JSON ``{"inputs": {"<name>": ...}}``: named tensors, columnar (batch dimension included).

The image forms feed the app's image input; a model's other inputs then come
in ``inputs`` (a JSON object; in a multipart form, a field holding JSON), one
entry per image.

Limits are checked before the expensive step: the byte size of an upload or a
base64 string before decoding, the number of images before any decoding.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from yyai import bounded_json
from yyai.conf import yyai_settings
from yyai.http_errors import ApiError
from yyai.runtime import preprocess
from yyai.runtime.errors import PayloadTooLarge

log = logging.getLogger(__name__)

MAX_PATH_BYTES, MAX_NAME_BYTES = 1024, 255  # imgPath: the whole, and one name in it (the usual NAME_MAX)

FILE_FIELDS = ("img", "image")
IMAGE_KEYS = ("img", "image", "images", "imgPath")
KEYS = (*IMAGE_KEYS, "instances", "inputs")
HINT = (
    "send one of: multipart file 'img' or 'image', JSON 'image' or 'images' (base64), 'imgPath', 'instances', 'inputs'"
)
SAMPLE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass(frozen=True)
class PredictInput:
    """What to run: image bytes (with other ``inputs``), rows or named tensors; ``many``: answer per row."""

    images: list[bytes] | None = None
    instances: Any = None
    inputs: Any = None
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
    inputs = _inputs_field(data.get("inputs"), form=hasattr(data, "getlist")) if "inputs" in present else None
    extra = [key for key in present if key != "inputs"]
    if not extra:
        return PredictInput(inputs=inputs, many=True)
    if len(extra) > 1:
        raise ApiError(f"several inputs found ({', '.join(present)}); {HINT}", code="bad_input")
    key = extra[0]
    if key == "instances":
        if inputs is not None:
            raise ApiError(f"several inputs found ({', '.join(present)}); {HINT}", code="bad_input")
        return PredictInput(instances=data.get(key), many=True)
    if key in uploads:
        return PredictInput(images=[_read_upload(uploads[key])], inputs=inputs)
    value = data.get(key)
    if key in FILE_FIELDS:
        return PredictInput(images=[_b64(value, key)], inputs=inputs)
    if key == "images":
        value = data.getlist(key) if hasattr(data, "getlist") else value
        if not isinstance(value, list) or not value:
            raise ApiError("'images' must be a non-empty list of base64 strings", code="bad_input")
        if len(value) > yyai_settings.MAX_ROWS_PER_REQUEST:
            raise ApiError(
                f"'images' has {len(value)} items; the limit is {yyai_settings.MAX_ROWS_PER_REQUEST}",
                code="payload_too_large",
                status=413,
            )
        return PredictInput(
            images=[_b64(item, f"images[{i}]") for i, item in enumerate(value)], inputs=inputs, many=True
        )
    return PredictInput(images=[read_image_path(value)], inputs=inputs)


def _inputs_field(value: Any, *, form: bool) -> Any:
    """``inputs``: a JSON object (or, for a one-input model, a tensor); a form field holds it as JSON text."""
    if form:
        try:
            value = bounded_json.loads(value, max_depth=yyai_settings.MAX_JSON_DEPTH)
        except bounded_json.JSONError as exc:
            raise ApiError(
                f"the 'inputs' field must hold JSON, an object naming the inputs: {exc}", code="bad_input"
            ) from None
    if value is None:
        raise ApiError("'inputs' must be an object naming the inputs, or a tensor", code="bad_input")
    return value


def read_image_path(value: Any) -> bytes:
    """Bytes of a server-side image, confined to YYAI_IMAGE_ROOT.

    The name is checked without the disk first (a string, encodable, not too long, inside the root once
    normalised), then resolved (symlinks followed, loops and missing parts refused) and checked again.
    Every failure is a 4xx, logged as one line without a traceback, naming the path as the caller gave it.
    """
    root = yyai_settings.IMAGE_ROOT
    if root is None:
        raise ApiError(
            "'imgPath' is disabled on this server (YYAI_IMAGE_ROOT is not set)", code="image_path_disabled", status=403
        )
    try:
        return _read_image_path(root, value)
    except ApiError as exc:
        log.warning("imgPath %.200r refused: %s (%s)", value, exc.message, exc.code)
        raise


def _read_image_path(root: Path, value: Any) -> bytes:
    if not isinstance(value, str) or not value or "\x00" in value:
        raise ApiError("'imgPath' must be a non-empty path string", code="bad_input")
    try:
        encoded = os.fsencode(value)
    except UnicodeError:
        raise ApiError("'imgPath' is not a valid file name (it cannot be encoded)", code="bad_input") from None
    if len(encoded) > MAX_PATH_BYTES or any(len(part) > MAX_NAME_BYTES for part in encoded.split(b"/")):
        raise ApiError(
            f"'imgPath' is too long (at most {MAX_PATH_BYTES} bytes, {MAX_NAME_BYTES} per name)", code="bad_input"
        )
    outside = ApiError("'imgPath' points outside the image root", code="path_outside_root", status=403)
    if not Path(os.path.normpath(root / value)).is_relative_to(root):
        raise outside  # before anything outside the root is asked of the disk
    missing = ApiError(f"no image at imgPath '{value}'", code="path_not_found", status=404)
    try:
        path = Path(os.path.realpath(root / value, strict=True))
    except (FileNotFoundError, NotADirectoryError):
        raise missing from None
    except OSError as exc:  # a symlink loop, a name the file system refuses, no permission
        raise ApiError(f"imgPath '{value}' cannot be resolved: {exc.strerror or 'refused'}", code="bad_input") from None
    if not path.is_relative_to(root):
        raise outside
    try:
        return _read_limited(path)
    except IsADirectoryError:
        raise missing from None
    except PermissionError:
        raise ApiError(
            f"imgPath '{value}' cannot be read by the server", code="path_not_readable", status=403
        ) from None
    except OSError as exc:
        raise ApiError(f"imgPath '{value}' cannot be read: {exc.strerror or 'refused'}", code="bad_input") from None


def sample_path(app_dir: Path) -> Path | None:
    """The app's sample image (``sample.jpg``, ``.png``, ...), if it has one: what GET predict runs on."""
    return next((p for p in (app_dir / f"sample{s}" for s in SAMPLE_SUFFIXES) if p.is_file()), None)


def sample_image(app_dir: Path) -> bytes:
    """The bytes of :func:`sample_path`; ApiError 404 when the app has none."""
    path = sample_path(app_dir)
    if path is None:
        raise ApiError(
            f"app '{app_dir.name}' has no sample image (sample.jpg, sample.png, ...); POST an image instead",
            code="no_sample",
            status=404,
        )
    return _read_limited(path)


def _b64(value: Any, field: str) -> bytes:
    if not isinstance(value, str):
        raise ApiError(f"'{field}' must be a base64 string", code="bad_base64")
    return preprocess.decode_base64(value, max_bytes=yyai_settings.MAX_IMAGE_BYTES)


def _read_upload(upload) -> bytes:
    if upload.size > yyai_settings.MAX_IMAGE_BYTES:
        raise PayloadTooLarge(f"the upload is {upload.size} bytes; the limit is {yyai_settings.MAX_IMAGE_BYTES}")
    return upload.read()


def _read_limited(path: Path) -> bytes:
    """A regular file's bytes, refused from its size past MAX_IMAGE_BYTES; IsADirectoryError for anything but a
    regular file (a folder, a device, a pipe), other OSErrors as they come."""
    limit = yyai_settings.MAX_IMAGE_BYTES
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO must not hold the request
    with os.fdopen(fd, "rb") as handle:
        status = os.fstat(handle.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise IsADirectoryError(errno.EISDIR, "not a regular file", str(path))
        if status.st_size > limit:
            raise PayloadTooLarge(f"the image is {status.st_size} bytes; the limit is {limit}")
        return handle.read(limit + 1)
