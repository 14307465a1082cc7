"""The runtime's limits and their defaults, written once (``yyai.conf`` takes the server's defaults from here).

Nothing here imports more than the standard library, so settings can read it
without loading TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_FILE_BYTES = 2 * 1024**3  # one model file, or one SavedModel folder
DEFAULT_SETTLE_SECONDS = 5.0  # a numbered version without READY counts once unchanged this long
DEFAULT_VALIDATE_TIMEOUT_SECONDS = 300.0  # the upload validation child's time ...
DEFAULT_VALIDATE_MEMORY_BYTES = 4 << 30  # ... and address space
DEFAULT_LOAD_WORKERS = 2  # apps loaded in parallel at start-up
DEFAULT_MAX_STRING_ELEMENTS = 1 << 16  # string (BYTES, DT_STRING) elements of one request tensor


@dataclass(frozen=True)
class RequestLimits:
    """Per-request limits: rows (images or instances), pixels of one image and of all images together.

    Pixels are read from each image's header before anything is decoded.
    """

    max_rows: int = 64
    max_pixels: int = 40_000_000
    max_request_pixels: int = 160_000_000
