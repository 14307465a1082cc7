"""What opening a model gives the loader, whatever its format: signatures, runners, a way to release it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .feed import Feed
from .signature import Signature

Runner = Callable[[Feed], dict[str, np.ndarray]]  # named inputs (rows first) -> named outputs


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Opened:
    """An opened model: every signature it can run, and how to run each one.

    ``fmt`` is ``keras``, ``saved_model`` (TF2 object API) or ``tf1_session``
    (a graph in its own ``tf.Graph`` and ``tf.compat.v1.Session``); ``close``
    releases what the model holds (the session), once it no longer serves.
    """

    fmt: str
    signatures: dict[str, Signature]
    runners: dict[str, Runner]
    params: int
    close: Callable[[], None] = field(default=_nothing)
    keep: object = None  # the Keras model or the restored trackable the runners call


_TRACE_LINE = re.compile(r"^\s*(File \"|Detected at node|Graph execution error|\[\[\{\{node)")
_NOISE = re.compile(r"\{\{[^}]*\}\}|\[Op:[^\]]*\]|\[\[[^\]]*\]\]")
_PATH = re.compile(r"(?<![\w.])/(?:[\w.+-]+/)+[\w.+-]*")


def refusal_of(exc: BaseException) -> str:
    """What a model's own error (TensorFlow's, while running a request) says about the input, without the
    traceback TensorFlow appends, node and op names, or file paths."""
    text = getattr(exc, "message", None) or str(exc)
    lines = [line for line in text.splitlines() if line.strip() and not _TRACE_LINE.match(line)]
    text = _PATH.sub("<path>", _NOISE.sub("", " ".join(" ".join(lines).split()))).strip()
    return (text or type(exc).__name__)[:500]


def reason_of(exc: BaseException) -> str:
    """One line a caller can read; the full traceback goes to the log, not the response.

    Keras puts the useful part (the class it could not locate) at the end of
    long messages, so a long one keeps its head and its tail.
    """
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 600 else f"{text[:200]} ... {text[-380:]}"
