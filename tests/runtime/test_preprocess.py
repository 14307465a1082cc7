"""Tests of yyai.runtime.preprocess: header sniffing, decoding, limits, base64, model input of images."""

from __future__ import annotations

import base64
import os
import struct
import zlib

import cv2
import numpy as np
import pytest

from yyai.runtime import preprocess
from yyai.runtime.errors import BadBase64, BadTensor, ImageTooLarge, NotAnImage, PayloadTooLarge
from yyai.runtime.manifest import InputSpec
from yyai.runtime.preprocess import (
    DEFAULT_MAX_PIXELS,
    decode_base64,
    decode_image,
    image_dimensions,
    prepare_image,
    to_model_input,
)

RAW = InputSpec(scale=1.0, offset=0.0)  # pixel values unchanged, easy to assert
JUNK = np.random.default_rng(1).integers(0, 256, 200, dtype=np.uint8).tobytes()


def encode(ext: str, image: np.ndarray, *params: int) -> bytes:
    ok, buf = cv2.imencode(ext, image, list(params))
    assert ok
    return buf.tobytes()


def noise(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    shape = (height, width) if channels == 1 else (height, width, channels)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def png_header(width: int, height: int) -> bytes:
    """A PNG signature plus a valid IHDR chunk (8-bit RGB), and nothing else."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + crc


def webp_extended(width: int, height: int) -> bytes:
    """A VP8X (extended) WebP wrapping the lossless bitstream OpenCV writes."""
    lossless = encode(".webp", noise(height, width), cv2.IMWRITE_WEBP_QUALITY, 101)  # lossless, seed 0
    assert lossless[12:16] == b"VP8L"
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\0\0\0\0"
    vp8x += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + vp8x + lossless[12:]
    return b"RIFF" + struct.pack("<I", len(body)) + body


def header_length(data: bytes) -> int:
    """How many leading bytes hold the size, per format (for JPEG: through the frame header)."""
    if data.startswith(b"\xff\xd8"):
        return max(data.find(b"\xff\xc0"), data.find(b"\xff\xc2")) + 9
    if data.startswith(b"RIFF"):
        return {b"VP8 ": 30, b"VP8L": 25, b"VP8X": 30}[data[12:16]]
    return {b"\x89P": 24, b"BM": 26}[data[:2]]


def test_opencv_pixel_guard_is_set():
    assert int(os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"]) >= DEFAULT_MAX_PIXELS


# --- header dimensions ---------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        encode(".png", noise(7, 13)),
        encode(".jpg", noise(7, 13)),
        encode(".jpg", noise(7, 13), cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
        encode(".bmp", noise(7, 13)),
        encode(".webp", noise(7, 13), cv2.IMWRITE_WEBP_QUALITY, 80),
        encode(".webp", noise(7, 13), cv2.IMWRITE_WEBP_QUALITY, 101),
        webp_extended(13, 7),
    ],
    ids=["png", "jpeg", "jpeg-progressive", "bmp", "webp-vp8", "webp-vp8l", "webp-vp8x"],
)
def test_image_dimensions_reads_width_and_height_from_header(data):
    assert image_dimensions(data) == (13, 7)
    header_end = header_length(data)
    assert image_dimensions(data[:header_end]) == (13, 7)  # the header alone is enough
    with pytest.raises(NotAnImage, match="truncated|ends or breaks"):
        image_dimensions(data[: header_end - 1])


def test_webp_chunk_kinds_are_the_ones_under_test():
    assert encode(".webp", noise(7, 13), cv2.IMWRITE_WEBP_QUALITY, 80)[12:16] == b"VP8 "
    assert webp_extended(13, 7)[12:16] == b"VP8X"


def test_webp_lossy_size_ignores_upscaling_bits():
    data = bytearray(encode(".webp", noise(7, 13), cv2.IMWRITE_WEBP_QUALITY, 80))
    data[27] |= 0xC0  # the top two bits of each 16-bit size are a scaling hint, not size
    data[29] |= 0x40
    assert image_dimensions(bytes(data)) == (13, 7)


def test_jpeg_dimensions_skip_segments_and_fill_bytes():
    jpeg = encode(".jpg", noise(5, 9))
    app1 = b"\xff\xe1" + struct.pack(">H", 2 + 300) + b"x" * 300  # a large EXIF-like segment
    padded = jpeg[:2] + app1 + b"\xff\xff\xff" + jpeg[3:]  # fill bytes before the next marker
    assert image_dimensions(padded) == (9, 5)
    assert decode_image(padded).shape == (5, 9, 3)


def test_bmp_core_header_and_top_down_rows():
    core = b"BM" + struct.pack("<IHHI", 26 + 3 * 2 * 2, 0, 0, 26) + struct.pack("<IHHHH", 12, 3, 2, 1, 24)
    assert image_dimensions(core) == (3, 2)

    image = noise(4, 3)
    bottom_up = bytearray(encode(".bmp", image))
    assert struct.unpack("<i", bottom_up[22:26])[0] == 4
    top_down = bottom_up.copy()
    top_down[22:26] = struct.pack("<i", -4)
    assert image_dimensions(bytes(top_down)) == (3, 4)
    np.testing.assert_array_equal(decode_image(bytes(top_down)), image[::-1])


@pytest.mark.parametrize(
    "data",
    [b"", b"GIF89a\x01\x00\x01\x00", b"RIFF\x10\x00\x00\x00WAVEfmt ", b"%PDF-1.7", b"\0" + JUNK],
    ids=["empty", "gif", "riff-wave", "pdf", "random"],
)
def test_image_dimensions_is_none_for_other_formats(data):
    assert image_dimensions(data) is None


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIDAT" + b"\0" * 16,
        b"\xff\xd8\xff",
        b"\xff\xd8\xff\xe0\x00\x10JFIF",
        b"\xff\xd8\xff\xe0\x00\x00",  # segment length < 2
        b"\xff\xd8\xff\xd9",  # end of image, no frame
        b"\xff\xd8\xff\xc0\x00\x11\x08\x00",  # frame header cut short
        b"BM",
        b"BM" + b"\0" * 12 + struct.pack("<I", 20) + b"\0" * 16,  # unknown header size
        b"BM" + b"\0" * 12 + struct.pack("<Iii", 40, -3, 2),  # negative width
        b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\0\0",
        b"RIFF\0\0\0\0WEBPVP8 \0\0\0\0\0\0\0\0\0\0\0\0\0\0",  # no start code
        b"RIFF\0\0\0\0WEBPVP8L\0\0\0\0\x00\0\0\0\0",  # no signature
        b"RIFF\0\0\0\0WEBPJUNK\0\0\0\0",
    ],
)
def test_image_dimensions_rejects_broken_headers(data):
    with pytest.raises(NotAnImage, match="not an image in a supported format"):
        image_dimensions(data)


# --- decode_image ---------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".png", ".bmp"])
def test_decode_lossless_formats_exactly(ext):
    image = noise(6, 10)
    decoded = decode_image(encode(ext, image))
    assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, image)


def test_decode_lossless_webp_exactly():
    image = noise(6, 10)
    np.testing.assert_array_equal(decode_image(encode(".webp", image, cv2.IMWRITE_WEBP_QUALITY, 101)), image)
    np.testing.assert_array_equal(decode_image(webp_extended(10, 6)), image)


@pytest.mark.parametrize("ext,params", [(".jpg", ()), (".webp", (cv2.IMWRITE_WEBP_QUALITY, 90))])
def test_decode_lossy_formats_approximately(ext, params):
    image = np.full((16, 24, 3), (200, 100, 30), np.uint8)  # flat color survives lossy coding
    decoded = decode_image(encode(ext, image, *params))
    assert decoded.shape == (16, 24, 3) and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - image).max() <= 3


def test_decode_gray_png_gives_three_equal_channels():
    gray = noise(5, 4, channels=1)
    decoded = decode_image(encode(".png", gray))
    assert decoded.shape == (5, 4, 3)
    for channel in range(3):
        np.testing.assert_array_equal(decoded[:, :, channel], gray)


def test_decode_rgba_png_drops_alpha():
    bgra = noise(5, 4, channels=4)
    bgra[0, 0, 3] = 0  # fully transparent pixel keeps its color, not composited
    decoded = decode_image(encode(".png", bgra))
    np.testing.assert_array_equal(decoded, bgra[:, :, :3])


def test_pixel_limit_is_enforced_from_header_without_decoding(monkeypatch):
    def fail(*args):
        raise AssertionError("the image must not be decoded")

    monkeypatch.setattr(preprocess.cv2, "imdecode", fail)
    with pytest.raises(ImageTooLarge) as caught:
        decode_image(png_header(30000, 30000) + b"\0\0\0\0IDAT")
    assert caught.value.message == "image is 30000x30000 = 900000000 pixels; the limit is 40000000"
    assert caught.value.code == "image_too_large"


def test_pixel_limit_is_configurable():
    data = encode(".png", noise(10, 10))
    assert decode_image(data, max_pixels=100).shape == (10, 10, 3)
    with pytest.raises(ImageTooLarge, match="10x10 = 100 pixels; the limit is 99"):
        decode_image(data, max_pixels=99)


def test_empty_bytes():
    with pytest.raises(NotAnImage, match="empty"):
        decode_image(b"")


@pytest.mark.parametrize("width,height", [(0, 10), (10, 0)])
def test_zero_size_image(width, height):
    with pytest.raises(NotAnImage, match=f"header says it is {width}x{height} pixels"):
        decode_image(png_header(width, height))


def test_random_bytes_are_not_an_image():
    with pytest.raises(NotAnImage) as caught:
        decode_image(b"\x00\x01" + JUNK)
    assert caught.value.message == "the upload is not an image in a supported format (JPEG, PNG, BMP, WebP)"
    assert caught.value.code == "not_an_image"


@pytest.mark.parametrize("ext", [".jpg", ".png", ".bmp", ".webp"])
def test_truncated_image_is_not_an_image(ext):
    data = encode(ext, noise(64, 64))
    with pytest.raises(NotAnImage, match="truncated or corrupt"):
        decode_image(data[: len(data) // 2])


@pytest.mark.parametrize(
    "data",
    [
        png_header(8, 8) + JUNK,
        b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x08\x00\x08\x03" + JUNK,
        b"RIFF\xf0\x00\x00\x00WEBPVP8 \xe4\x00\x00\x00\x00\x00\x00\x9d\x01\x2a\x08\x00\x08\x00" + JUNK,
        b"BM" + struct.pack("<IHHI", 0, 0, 0, 54) + struct.pack("<IiiHH", 40, 8, 8, 1, 24) + JUNK[:8],
        encode(".png", noise(4, 4))[:33] + b"<?php echo 1; ?>" * 10,
    ],
    ids=["png", "jpeg", "webp", "bmp", "png-with-script"],
)
def test_junk_after_a_valid_header_is_not_an_image(data):
    with pytest.raises(NotAnImage):
        decode_image(data)


# --- to_model_input / prepare_image ---------------------------------------------------

# One row, three pixels in BGR: pure blue, pure red, white.
PIXELS = np.array([[[255, 0, 0], [0, 0, 255], [255, 255, 255]]], np.uint8)


def test_rgb_conversion_and_scaling_are_exact():
    out = to_model_input(PIXELS, spec=InputSpec(scale=0.5, offset=-1.0), input_shape=(1, 3, 3))
    assert out.dtype == np.float32 and out.shape == (1, 3, 3)
    expected = np.array([[[0, 0, 255], [255, 0, 0], [255, 255, 255]]], np.float32) * 0.5 - 1.0
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize(
    "scale,offset", [(1 / 255, 0.0), (2 / 255, -1.0), (-1 / 255, 0.0), (-2 / 255, 1.0), (1.0, 0.0), (0.1, 0.25)]
)
def test_scaling_gives_the_values_of_the_plain_float32_formula_bit_for_bit(scale, offset):
    """scale_into (the batch's and scale_pixels' one pass) against ``astype(float32) * scale + offset``: every
    pixel value, and a negative scale's -0.0 made +0.0 by the offset as the formula makes it."""
    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    expected = pixels.astype(np.float32) * np.float32(scale) + np.float32(offset)
    out = preprocess.scale_into(pixels, scale, offset, np.full(pixels.shape, np.nan, np.float32))
    assert out.dtype == np.float32
    assert np.array_equal(out.view(np.uint32), expected.view(np.uint32))
    if offset == 0.0:
        assert out[0, 0] == 0.0 and not np.signbit(out[0, 0])  # pixel 0: +0.0, whatever the scale's sign


def test_default_scale_maps_to_unit_range():
    out = to_model_input(PIXELS, spec=InputSpec(), input_shape=(1, 3, 3))
    assert out.min() == 0.0 and out.max() == pytest.approx(1.0)


def test_bgr_keeps_channel_order():
    out = to_model_input(PIXELS, spec=InputSpec(color="bgr", scale=1.0), input_shape=(1, 3, 3))
    np.testing.assert_array_equal(out, PIXELS.astype(np.float32))


def test_gray_is_default_for_one_channel_models():
    out = to_model_input(PIXELS, spec=RAW, input_shape=(1, 3, 1))
    assert out.shape == (1, 3, 1)
    # ITU-R BT.601 luma, as OpenCV computes it: 0.114 B, 0.299 R.
    np.testing.assert_array_equal(out[0, :, 0], [29.0, 76.0, 255.0])


@pytest.mark.parametrize("color,channels", [("gray", 3), ("rgb", 1), ("bgr", 4)])
def test_channel_mismatch_is_a_bad_tensor(color, channels):
    with pytest.raises(BadTensor, match=f"expects {channels} color channels"):
        to_model_input(PIXELS, spec=InputSpec(color=color), input_shape=(1, 3, channels))


def test_size_comes_from_model_shape():
    out = to_model_input(noise(20, 30), spec=RAW, input_shape=(4, 5, 3))
    assert out.shape == (4, 5, 3)


def test_manifest_size_is_width_then_height():
    out = to_model_input(noise(20, 30), spec=InputSpec(size=(8, 2)), input_shape=(2, 8, 3))
    assert out.shape == (2, 8, 3)
    out = to_model_input(noise(20, 30), spec=InputSpec(size=(8, 2)), input_shape=(None, None, 3))
    assert out.shape == (2, 8, 3)


def test_model_of_any_size_takes_each_image_at_its_own_size():
    assert to_model_input(noise(20, 30), spec=RAW, input_shape=(None, None, 3)).shape == (20, 30, 3)
    assert to_model_input(noise(20, 30), spec=RAW, input_shape=(None, 10, 3)).shape == (20, 10, 3)
    assert to_model_input(noise(20, 30), spec=RAW, input_shape=(None, None, None)).shape == (20, 30, 3)


def test_integer_inputs_take_raw_pixels_unless_scaled():
    out = to_model_input(PIXELS, spec=InputSpec(color="bgr"), input_shape=(1, 3, 3), dtype=np.dtype(np.uint8))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, PIXELS)
    halved = to_model_input(
        PIXELS, spec=InputSpec(color="bgr", scale=0.5), input_shape=(1, 3, 3), dtype=np.dtype(np.int32)
    )
    assert halved.dtype == np.int32 and halved.max() == 128


def test_float64_and_float16_inputs():
    for dtype in (np.float64, np.float16):
        out = to_model_input(PIXELS, spec=InputSpec(), input_shape=(1, 3, 3), dtype=np.dtype(dtype))
        assert out.dtype == dtype and float(out.max()) == pytest.approx(1.0)


def test_shrinking_averages_areas():
    image = np.zeros((3, 3, 3), np.uint8)
    image[0, 0] = 90  # the centre stays 0: a sample of the centre would give 0
    out = to_model_input(image, spec=InputSpec(color="bgr", scale=1.0), input_shape=(1, 1, 3))
    np.testing.assert_array_equal(out, np.full((1, 1, 3), 10.0, np.float32))


def test_growing_interpolates_linearly():
    image = noise(2, 2)
    out = to_model_input(image, spec=InputSpec(color="bgr", scale=1.0), input_shape=(5, 7, 3))
    expected = cv2.resize(image, (7, 5), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    np.testing.assert_array_equal(out, expected)


def test_prepare_image_decodes_and_converts():
    out = prepare_image(encode(".png", PIXELS), spec=RAW, input_shape=(1, 3, 3))
    np.testing.assert_array_equal(out, PIXELS[:, :, ::-1].astype(np.float32))
    with pytest.raises(ImageTooLarge):
        prepare_image(encode(".png", PIXELS), spec=RAW, input_shape=(1, 3, 3), max_pixels=2)


def gray_alpha_png(gray: np.ndarray, alpha: np.ndarray) -> bytes:
    """A PNG of color type 4 (gray with alpha), which OpenCV cannot write."""
    height, width = gray.shape
    rows = b"".join(b"\0" + np.dstack([gray, alpha]).reshape(height, -1)[y].tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 4, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


SMOOTH = cv2.GaussianBlur(noise(37, 53), (7, 7), 0)  # compresses like a photo
ENCODED = {
    "png gray": encode(".png", SMOOTH[:, :, 0]),
    "png gray 16-bit": encode(".png", SMOOTH[:, :, 0].astype(np.uint16) * 257 + 3),
    "png gray+alpha": gray_alpha_png(SMOOTH[:, :, 0], SMOOTH[:, :, 1]),
    "png bilevel": encode(".png", SMOOTH[:, :, 0], cv2.IMWRITE_PNG_BILEVEL, 1),
    "png rgb": encode(".png", SMOOTH),
    "png rgb 16-bit": encode(".png", SMOOTH.astype(np.uint16) * 255),
    "png rgba": encode(".png", np.dstack([SMOOTH, SMOOTH[:, :, :1]])),
    "jpeg": encode(".jpg", SMOOTH),
    "jpeg gray": encode(".jpg", SMOOTH[:, :, 0]),
    "bmp": encode(".bmp", SMOOTH),
    "bmp gray": encode(".bmp", SMOOTH[:, :, 0]),
    "webp": encode(".webp", SMOOTH),
    "webp lossless": encode(".webp", SMOOTH, cv2.IMWRITE_WEBP_QUALITY, 101),
}


@pytest.mark.parametrize("kind", sorted(ENCODED))
@pytest.mark.parametrize(
    "color,input_shape",
    [
        (None, (37, 53, 3)),
        (None, (37, 53, 1)),
        (None, (16, 24, 3)),  # shrunk: INTER_AREA
        (None, (50, 70, 1)),  # grown: INTER_LINEAR
        ("bgr", (20, 20, 3)),
        ("gray", (None, None, None)),
    ],
)
def test_decoding_into_the_models_color_gives_the_same_pixels(kind, color, input_shape):
    """decode_model_pixels skips a pass where the decoder gives the model's color; the pixels are those of
    decode_image then model_pixels, bit for bit, for every format and color the decoders know."""
    spec = InputSpec(color=color)
    data = ENCODED[kind]
    direct = preprocess.decode_model_pixels(data, spec=spec, input_shape=input_shape)
    expected = preprocess.model_pixels(preprocess.decode_image(data), spec=spec, input_shape=input_shape)
    assert direct.dtype == np.uint8 and direct.shape == expected.shape
    np.testing.assert_array_equal(direct, expected)


def test_decoding_into_the_models_color_keeps_the_checks():
    with pytest.raises(ImageTooLarge):
        preprocess.decode_model_pixels(ENCODED["png gray"], spec=RAW, input_shape=(37, 53, 1), max_pixels=100)
    with pytest.raises(NotAnImage):
        preprocess.decode_model_pixels(ENCODED["png gray"][:60], spec=RAW, input_shape=(37, 53, 1))
    with pytest.raises(BadTensor, match="expects 3 color channels"):
        preprocess.decode_model_pixels(ENCODED["png gray"], spec=InputSpec(color="gray"), input_shape=(37, 53, 3))


# --- decode_base64 --------------------------------------------------------------------

PAYLOAD = bytes(range(256)) * 3  # holds bytes that encode to + / (standard) and - _ (URL-safe)


@pytest.mark.parametrize(
    "text",
    [
        base64.b64encode(PAYLOAD).decode(),
        base64.urlsafe_b64encode(PAYLOAD).decode(),
        "data:image/png;base64," + base64.b64encode(PAYLOAD).decode(),
        "DATA:image/svg+xml;base64," + base64.b64encode(PAYLOAD).decode(),
        base64.encodebytes(PAYLOAD).decode().replace("\n", "\r\n"),
        "  " + base64.b64encode(PAYLOAD).decode() + "  ",
    ],
    ids=["standard", "urlsafe", "data-url", "data-url-upper", "mime-lines", "spaces"],
)
def test_decode_base64_accepts_common_forms(text):
    assert decode_base64(text, max_bytes=10_000) == PAYLOAD


def test_payload_exercises_both_alphabets():
    assert "+" in base64.b64encode(PAYLOAD).decode() and "-" in base64.urlsafe_b64encode(PAYLOAD).decode()


@pytest.mark.parametrize("payload", [b"a", b"ab", b"abc", b"abcd", b"\xfb\xff"])
def test_decode_base64_tolerates_missing_padding(payload):
    text = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    assert decode_base64(text, max_bytes=100) == payload


@pytest.mark.parametrize(
    "text",
    ["abc$def", "QUJD!", "QUJDé", "QQ=A", "QUJD=QUJD", "QUJDQ", "data:application/pdf;base64,QUJD"],
    ids=["dollar", "bang", "non-ascii", "inner-padding", "padding-then-data", "impossible-length", "other-data-url"],
)
def test_decode_base64_rejects_invalid_text(text):
    with pytest.raises(BadBase64) as caught:
        decode_base64(text, max_bytes=100)
    assert caught.value.code == "bad_base64"


@pytest.mark.parametrize("text", ["", "   \n", "====", "data:image/png;base64,"])
def test_decode_base64_rejects_empty(text):
    with pytest.raises(BadBase64, match="empty"):
        decode_base64(text, max_bytes=100)


@pytest.mark.parametrize("value", [b"QUJD", None, 123, ["QUJD"]])
def test_decode_base64_needs_a_string(value):
    with pytest.raises(BadBase64, match="must be a base64 string"):
        decode_base64(value, max_bytes=100)


def test_decode_base64_size_limit_is_checked_before_decoding():
    text = base64.b64encode(b"x" * 101).decode()
    assert decode_base64(base64.b64encode(b"x" * 100).decode(), max_bytes=100) == b"x" * 100
    with pytest.raises(PayloadTooLarge, match="101 bytes; the limit is 100"):
        decode_base64(text, max_bytes=100)
    with pytest.raises(PayloadTooLarge):  # invalid characters are never looked at
        decode_base64("!" * 1000, max_bytes=100)
