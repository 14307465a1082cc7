"""Summarise a py-spy ``--format raw`` profile (collapsed stacks) by request step.

``py-spy record -f raw`` writes one line per distinct stack, ``frame;frame;... count``.
Each sample of an active thread is charged to the first step (from the top
of the stack down) whose pattern matches one of its frames, so the shares add
up to 100% of the active samples.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path
from typing import Callable

# (step, substring of a py-spy frame "function (file:line)"), most specific first.
STEPS: tuple[tuple[str, str], ...] = (
    ("model (TensorFlow graph)", "tensorflow/"),
    ("model (Keras)", "keras/"),
    ("image decode (cv2.imdecode)", "decode_image"),
    ("image decode (cv2.imdecode)", "decode_model_pixels"),  # before model_pixels: a substring of it
    ("resize/color/scale", "to_model_input"),
    ("resize/color/scale", "model_pixels ("),
    ("resize/color/scale", "scale_into"),  # in the batcher, as a batch is put together
    ("batcher wait/collate", "batching.py"),
    ("base64", "decode_base64"),
    ("format results", "postprocess.py"),
    ("JSON body parsing", "parsers.py"),
    ("multipart parsing", "multipartparser.py"),
    ("response rendering (JSON)", "renderers.py"),
    ("DRF content negotiation", "negotiation.py"),
    ("authentication", "authentication.py"),
    ("DRF request/response", "rest_framework/"),
    ("Django middleware", "django/utils/deprecation.py"),
    ("Django", "django/"),
    ("gunicorn (HTTP parse, socket I/O)", "gunicorn/"),
    ("JSON encode/decode", "json/"),
    ("fast path (checks, response)", "fastpath.py"),
    ("CPU pool (trips to and from the loop)", "services/cpu.py"),
    ("HTTP protocol (direct predicts)", "aiserver/protocol.py"),
    ("HTTP protocol (direct predicts)", "aiserver/direct.py"),
    ("uvicorn (HTTP parse, socket I/O)", "uvicorn/"),
    ("event loop (uvloop)", "asyncio/"),
)


def summarise(raw: Path, steps: tuple[tuple[str, str], ...] = STEPS) -> list[tuple[str, float]]:
    """(step, share of active samples in %) sorted by share; unmatched stacks count as 'other'."""
    counts: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        counts[_step(frames, steps)] += int(count)
    total = sum(counts.values()) or 1
    return sorted(((step, 100.0 * n / total) for step, n in counts.items()), key=lambda item: -item[1])


def _step(frames: list[str], steps: tuple[tuple[str, str], ...]) -> str:
    for frame in reversed(frames):  # leaf first: the innermost known step wins
        for step, pattern in steps:
            if pattern in frame:
                return step
    return "other"


def table(rows: list[tuple[str, float]]) -> str:
    lines = ["| step | share of busy samples |", "|---|---:|"]
    lines += [f"| {step} | {share:.1f}% |" for step, share in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(table(summarise(Path(sys.argv[1]))))


def record(spy: Path, pid: int, raw: Path, *, seconds: int, drive: Callable[[], object]) -> Path | None:
    """Sample process ``pid`` with py-spy (the GIL holder only, 250 Hz, ``seconds``) while ``drive()`` loads
    it; the raw stacks file, or None when py-spy wrote none."""
    argv = [
        str(spy),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(seconds),
        "--rate",
        "250",
        "--format",
        "raw",
        "--output",
        str(raw),
        "--nonblocking",
        "--gil",
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    drive()
    proc.wait(timeout=60)
    return raw if raw.exists() else None
