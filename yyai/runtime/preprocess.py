"""Turn caller images into model input: image bytes or base64 text.

Limits are enforced before any expensive work: the pixel count is read from
the image header before the image is decoded, and the decoded size of base64
text is computed from its length before it is decoded. Every failure raises a
typed :class:`~yyai.runtime.errors.InputError` whose message tells the caller
what to fix.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import struct

import numpy as np

from .errors import BadBase64, BadTensor, ImageTooLarge, NotAnImage, PayloadTooLarge
from .limits import RequestLimits
from .manifest import InputSpec

# OpenCV reads this once, at import: a second guard against giant images.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(2**28))
import cv2  # noqa: E402

DEFAULT_MAX_PIXELS = RequestLimits.max_pixels

_NOT_AN_IMAGE = "the upload is not an image in a supported format (JPEG, PNG, BMP, WebP)"
_TRUNCATED = f"{_NOT_AN_IMAGE}: its header is truncated"
_URL_SAFE = str.maketrans("-_", "+/")
_DATA_URL = re.compile(r"^data:image/[A-Za-z0-9.+-]+;base64,", re.IGNORECASE)
# SOFn markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers that stand alone, without a length field: TEM, RST0-7.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
# The PNG color types (IHDR byte 25) of a gray image: gray, gray with alpha.
_GRAY_PNG = frozenset({b"\x00", b"\x04"})


def image_dimensions(data: bytes) -> tuple[int, int] | None:
    """Return ``(width, height)`` from the header of a JPEG, PNG, BMP or WebP image.

    Only the header is read, never the pixels. Returns ``None`` when the bytes
    do not start like one of those formats; raises :class:`NotAnImage` when
    they do but the header is truncated or inconsistent.
    """
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            return _png_dimensions(data)
        if data.startswith(b"\xff\xd8\xff"):
            return _jpeg_dimensions(data)
        if data.startswith(b"BM"):
            return _bmp_dimensions(data)
        if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
            return _webp_dimensions(data)
    except struct.error:  # struct.unpack on a slice cut short by the end of the data
        raise NotAnImage(_TRUNCATED) from None
    return None


def _png_dimensions(data: bytes) -> tuple[int, int]:
    if data[12:16] != b"IHDR":
        raise NotAnImage(f"{_NOT_AN_IMAGE}: the PNG header has no IHDR chunk")
    return struct.unpack(">II", data[16:24])


def _jpeg_dimensions(data: bytes) -> tuple[int, int]:
    pos = 2
    while True:
        if data[pos : pos + 1] != b"\xff":
            raise NotAnImage(f"{_NOT_AN_IMAGE}: the JPEG ends or breaks before its frame header")
        while data[pos : pos + 1] == b"\xff":  # fill bytes
            pos += 1
        if pos >= len(data):
            raise NotAnImage(_TRUNCATED)
        marker = data[pos]
        pos += 1
        if marker in _JPEG_STANDALONE:
            continue
        if marker in _JPEG_SOF:  # length (2), precision (1), height (2), width (2)
            height, width = struct.unpack(">HH", data[pos + 3 : pos + 7])
            return width, height
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            raise NotAnImage(f"{_NOT_AN_IMAGE}: the JPEG has no frame header")
        (length,) = struct.unpack(">H", data[pos : pos + 2])
        if length < 2:
            raise NotAnImage(f"{_NOT_AN_IMAGE}: the JPEG has a segment of impossible length")
        pos += length


def _bmp_dimensions(data: bytes) -> tuple[int, int]:
    (header_size,) = struct.unpack("<I", data[14:18])
    if header_size == 12:  # BITMAPCOREHEADER: unsigned 16-bit sizes
        return struct.unpack("<HH", data[18:22])
    if header_size < 40:
        raise NotAnImage(f"{_NOT_AN_IMAGE}: the BMP header size {header_size} is unknown")
    width, height = struct.unpack("<ii", data[18:26])
    if width < 0:
        raise NotAnImage(f"{_NOT_AN_IMAGE}: the BMP header has a negative width")
    return width, abs(height)  # negative height = rows stored top-down


def _webp_dimensions(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8 ":  # lossy: 3-byte frame tag, start code, 14-bit sizes
        if data[23:26] != b"\x9d\x01\x2a":
            raise NotAnImage(f"{_NOT_AN_IMAGE}: the WebP VP8 frame has no start code")
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":  # lossless: signature byte, then two 14-bit sizes minus one
        if data[20:21] != b"\x2f":
            raise NotAnImage(f"{_NOT_AN_IMAGE}: the WebP VP8L chunk has no signature")
        (bits,) = struct.unpack("<I", data[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":  # extended: 24-bit canvas sizes minus one
        size = data[24:30]
        if len(size) < 6:
            raise NotAnImage(_TRUNCATED)
        return int.from_bytes(size[:3], "little") + 1, int.from_bytes(size[3:], "little") + 1
    raise NotAnImage(f"{_NOT_AN_IMAGE}: the WebP chunk {chunk!r} is unknown")


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode image bytes into a ``uint8`` array of shape ``(H, W, 3)`` in BGR order.

    Gray images are expanded to three channels and alpha is dropped. The pixel
    limit is checked on the header, before decoding.
    """
    return _decode(data, max_pixels, cv2.IMREAD_COLOR)


def decode_model_pixels(
    data: bytes,
    *,
    spec: InputSpec,
    input_shape: tuple[int | None, int | None, int | None],
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """:func:`model_pixels` of :func:`decode_image`, the same pixels bit for bit, with a pass fewer where the
    decoder can give the model's color itself: RGB always, gray when the image is a gray PNG (a color image
    made gray by the decoder would differ from OpenCV's conversion, so that one is converted as before)."""
    color = _model_color(spec, input_shape[2])
    if color == "rgb":
        flag = cv2.IMREAD_COLOR_RGB
    elif color == "gray" and data.startswith(b"\x89PNG") and data[25:26] in _GRAY_PNG:
        flag = cv2.IMREAD_GRAYSCALE
    else:
        return model_pixels(decode_image(data, max_pixels=max_pixels), spec=spec, input_shape=input_shape)
    return model_pixels(_decode(data, max_pixels, flag), spec=spec, input_shape=input_shape, decoded=color)


def _decode(data: bytes, max_pixels: int, flag: int) -> np.ndarray:
    if not data:
        raise NotAnImage("empty upload: the image has no bytes")
    size = image_dimensions(data)
    if size is None:
        raise NotAnImage(_NOT_AN_IMAGE)
    width, height = size
    if width == 0 or height == 0:
        raise NotAnImage(f"{_NOT_AN_IMAGE}: its header says it is {width}x{height} pixels")
    if width * height > max_pixels:
        raise ImageTooLarge(f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    except cv2.error:
        image = None
    if image is None:
        raise NotAnImage(f"{_NOT_AN_IMAGE}: it is truncated or corrupt and could not be decoded")
    return image


def to_model_input(
    image: np.ndarray,
    *,
    spec: InputSpec,
    input_shape: tuple[int | None, int | None, int | None],
    dtype: np.dtype = np.dtype(np.float32),
) -> np.ndarray:
    """Resize, color-convert and scale a BGR ``uint8`` image for a model input of ``dtype``.

    ``input_shape`` is the input's ``(H, W, C)`` without the batch dimension.
    The target size is ``spec.size`` (width, height), else the model's own, else
    (a dimension of any length) the image's own. The color is ``spec.color`` or,
    from ``C``, gray (1) or rgb. Returns ``pixel * scale + offset`` in ``dtype``
    (scale: ``spec.scale``, else 1/255 for a float input and 1 for an integer one).
    """
    return scale_pixels(model_pixels(image, spec=spec, input_shape=input_shape), spec=spec, dtype=dtype)


def model_pixels(
    image: np.ndarray,
    *,
    spec: InputSpec,
    input_shape: tuple[int | None, int | None, int | None],
    decoded: str = "bgr",
) -> np.ndarray:
    """The ``uint8`` half of :func:`to_model_input`: ``image`` resized and color-converted, ``(H, W, C)``.

    ``image`` is BGR, or already in the model's color when ``decoded`` names it (:func:`decode_model_pixels`).
    """
    height, width, channels = input_shape
    src_h, src_w = image.shape[:2]
    target_w, target_h = spec.size or (width or src_w, height or src_h)
    color = _model_color(spec, channels)
    if (src_w, src_h) != (target_w, target_h):
        shrinking = target_w <= src_w and target_h <= src_h
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        image = cv2.resize(image, (target_w, target_h), interpolation=interpolation)
    if color == decoded:
        image = image[:, :, np.newaxis] if image.ndim == 2 else image
    elif color == "rgb":
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    elif color == "gray":
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)[:, :, np.newaxis]
    if channels is not None and image.shape[2] != channels:
        raise BadTensor(
            f"the model expects {channels} color channels but input color '{color}' "
            f"gives {image.shape[2]}; set [input] color in app.toml to match the model"
        )
    return image


def _model_color(spec: InputSpec, channels: int | None) -> str:
    return spec.color or ("gray" if channels == 1 else "rgb")


def scale_pixels(image: np.ndarray, *, spec: InputSpec, dtype: np.dtype = np.dtype(np.float32)) -> np.ndarray:
    """The numeric half of :func:`to_model_input`: ``uint8`` pixels as ``pixel * scale + offset`` in ``dtype``."""
    dtype = np.dtype(dtype)
    integer = dtype.kind in "iu"
    scale, offset = spec.pixel_scale(integer), spec.offset
    if integer and scale == 1.0 and offset == 0.0:
        return image.astype(dtype, copy=False)
    scaled = scale_into(image, scale, offset, np.empty(image.shape, np.float32))
    if integer:
        info = np.iinfo(dtype)
        return np.clip(np.rint(scaled), info.min, info.max).astype(dtype)
    return scaled.astype(dtype, copy=False)


def scale_into(pixels: np.ndarray, scale: float, offset: float, out: np.ndarray) -> np.ndarray:
    """``pixels * scale + offset`` written into ``out`` (float32, the shape of ``pixels``) and returned: the values
    of ``pixels.astype(np.float32) * scale + offset``, bit for bit, without their temporary copies.

    The pixels are copied in as float32 (exact for any integer up to 2**24), then scaled and offset in place: two
    plain float32 passes, faster than numpy's casting multiply (59 against 75 us for 350x350x3; bench/NOTES.md,
    "Session 10"). Adding an offset of 0 changes no value unless the scale is negative (``-0.0 + 0.0``), so it is
    then left out."""
    scale, offset = np.float32(scale), np.float32(offset)
    np.copyto(out, pixels)
    out *= scale
    if offset or np.signbit(scale):
        out += offset
    return out


def prepare_image(
    data: bytes,
    *,
    spec: InputSpec,
    input_shape: tuple[int | None, int | None, int | None],
    dtype: np.dtype = np.dtype(np.float32),
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Decode image bytes and turn them into one model input (see :func:`to_model_input`)."""
    pixels = decode_model_pixels(data, spec=spec, input_shape=input_shape, max_pixels=max_pixels)
    return scale_pixels(pixels, spec=spec, dtype=dtype)


def decode_base64(text: str, *, max_bytes: int) -> bytes:
    """Decode base64 text, standard or URL-safe, padded or not, optionally a data URL.

    Whitespace is ignored. Raises :class:`PayloadTooLarge` when the text would
    decode to more than ``max_bytes`` (checked before decoding) and
    :class:`BadBase64` when it is empty or not base64.
    """
    if not isinstance(text, str):
        raise BadBase64(f"the image must be a base64 string, got {type(text).__name__}")
    text = _DATA_URL.sub("", "".join(text.split()), count=1).rstrip("=")
    if not text:
        raise BadBase64("the base64 string is empty")
    decoded_size = len(text) * 3 // 4
    if decoded_size > max_bytes:
        raise PayloadTooLarge(f"the base64 data decodes to {decoded_size} bytes; the limit is {max_bytes}")
    if len(text) % 4 == 1:
        raise BadBase64("the base64 string has an impossible length; it is cut off or has extra characters")
    if "-" in text or "_" in text:  # URL-safe
        text = text.translate(_URL_SAFE)
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):  # ValueError: non-ASCII characters
        raise BadBase64("the string is not valid base64: characters outside its alphabet, or wrong padding") from None
