"""What opening a model gives the loader, whatever its format: signatures, runners, a way to release it."""
from __future__ import annotations

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


def reason_of(exc: BaseException) -> str:
    """One line a caller can read; the full traceback goes to the log, not the response.

    Keras puts the useful part (the class it could not locate) at the end of
    long messages, so a long one keeps its head and its tail.
    """
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 600 else f"{text[:200]} ... {text[-380:]}"
