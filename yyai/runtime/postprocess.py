"""Turn a model's raw batch output into JSON-ready results, one per row.

Two kinds of output exist (see the manifest's ``[output] kind``):

* ``regression``: the value (or nested list of values), rounded to ``decimals``;
* ``classification``: the probabilities, the winning ``label`` and its ``score``.
  A single-unit output is a binary sigmoid: ``p`` is the probability of
  ``labels[1]``, ``1 - p`` that of ``labels[0]``.

Results hold only Python ``float``, ``str``, ``list`` and ``None`` (for a
non-finite model output), so they serialise to strict JSON as they are.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import ManifestError
from .manifest import OutputSpec

PROBABILITY_DECIMALS = 4
_BINARY_LABELS = ("0", "1")


def infer_kind(spec: OutputSpec, output_shape: tuple[int, ...]) -> str:
    """Return ``spec.kind``, or guess it from the output shape (batch dimension excluded).

    One unit is regression unless there are exactly two labels (a binary
    sigmoid); more than one unit is classification.
    """
    if spec.kind is not None:
        return spec.kind
    if math.prod(output_shape) > 1:
        return "classification"
    return "classification" if spec.labels is not None and len(spec.labels) == 2 else "regression"


def check_labels(spec: OutputSpec, output_shape: tuple[int, ...], kind: str) -> None:
    """Raise :class:`ManifestError` when a classifier's labels do not match its output units.

    A single-unit classifier (binary sigmoid) needs two labels; any other needs
    one label per unit. Regression, and a classifier without labels, pass.
    """
    if kind != "classification" or spec.labels is None:
        return
    units = math.prod(output_shape)
    expected = 2 if units == 1 else units
    if len(spec.labels) != expected:
        raise ManifestError(
            f"output.labels has {len(spec.labels)} labels but the model's {units} output "
            f"unit(s) need {expected}"
        )


def format_results(name: str, outputs: np.ndarray, *, spec: OutputSpec, kind: str) -> list[dict[str, Any]]:
    """Format a batch of outputs ``(N, ...)`` from model ``name`` into ``N`` result dicts."""
    outputs = np.asarray(outputs, dtype=np.float64)
    rows = outputs.reshape(len(outputs), -1)
    if kind == "regression":
        values = _rounded(rows[:, 0] if rows.shape[1] == 1 else outputs, spec.decimals)
        return [{"name": name, "value": value} for value in values]
    if rows.shape[1] == 1:
        return _binary(name, rows[:, 0], spec.labels or _BINARY_LABELS)
    labels = spec.labels or tuple(str(i) for i in range(rows.shape[1]))
    winners = rows.argmax(axis=1)
    scores = _rounded(rows[np.arange(len(rows)), winners], PROBABILITY_DECIMALS)
    values = _rounded(rows, PROBABILITY_DECIMALS)
    return [
        {"name": name, "value": value, "label": labels[winner], "score": score}
        for value, winner, score in zip(values, winners.tolist(), scores)
    ]


def _binary(name: str, probabilities: np.ndarray, labels: tuple[str, ...]) -> list[dict[str, Any]]:
    """Results of a single-unit sigmoid: ``p >= 0.5`` picks ``labels[1]``."""
    positive = probabilities >= 0.5
    scores = _rounded(np.where(positive, probabilities, 1.0 - probabilities), PROBABILITY_DECIMALS)
    values = _rounded(probabilities, PROBABILITY_DECIMALS)
    return [
        {"name": name, "value": value, "label": labels[int(is_positive)], "score": score}
        for value, is_positive, score in zip(values, positive.tolist(), scores)
    ]


def _rounded(values: np.ndarray, decimals: int) -> list[Any]:
    """Round in one vectorised step and return plain Python values; NaN and infinity become ``None``."""
    rounded = np.round(values, decimals) + 0.0  # + 0.0 turns -0.0 into 0.0
    finite = np.isfinite(rounded)
    if finite.all():
        return rounded.tolist()
    return np.where(finite, rounded, None).tolist()
