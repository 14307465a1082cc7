"""Turn a model's raw batch output into JSON-ready results, one per row.

A model with one output gets a result of one of two kinds (the manifest's ``[output] kind``):

* ``regression``: the value (or nested list of values); integers, booleans and
  strings as they are;
* ``classification``: the probabilities, the winning ``label`` and its ``score``.
  A single-unit output is a binary sigmoid: ``p`` is the probability of
  ``labels[1]``, ``1 - p`` that of ``labels[0]``.

A model with several outputs gets ``{"outputs": {<name>: <value>}}``, each value
as a regression's. Floats are the model's own (a float32 as the float64 of the
same value), unless the manifest's ``decimals`` rounds them. Results hold only plain Python values and ``None`` (for a
non-finite model output); text that is not UTF-8 becomes ``{"b64": ...}`` (TF
Serving's rule), so results serialise to strict JSON as they are.
"""

from __future__ import annotations

import base64
import functools
import math
from typing import Any

import numpy as np

from .errors import ManifestError
from .manifest import OutputSpec

_BINARY_LABELS = ("0", "1")
# At most this many values (rows x units) are formatted in plain Python: for one request's row of a few classes,
# a dozen numpy calls cost 24 us where the same values in Python cost 3 (bench/NOTES.md, "Session 7"); rounding a
# regression's one value took as long (bench/NOTES.md, "Session 10").
_PLAIN_VALUES = 256


def infer_kind(
    spec: OutputSpec, output_shape: tuple[int | None, ...] | None, dtype: str = "float32", distribution: bool = False
) -> str:
    """Return ``spec.kind``, or guess it from the output (shape without the batch dimension).

    Classification only where it is unmistakable: several units whose rows are probability distributions
    (``distribution``: a softmax, seen at warm-up), or as many labels as units; a single unit with exactly
    two labels (a binary sigmoid). Anything else is regression: raw logits, scores, outputs that are not
    floats or not of a fixed size.
    """
    if spec.kind is not None:
        return spec.kind
    if not dtype.startswith("float") or output_shape is None or None in output_shape:
        return "regression"
    units = math.prod(output_shape)
    if units > 1:
        labelled = spec.labels is not None and len(spec.labels) == units
        return "classification" if distribution or labelled else "regression"
    return "classification" if spec.labels is not None and len(spec.labels) == 2 else "regression"


def check_labels(
    spec: OutputSpec, output_shape: tuple[int | None, ...] | None, kind: str, dtype: str = "float32"
) -> None:
    """Raise :class:`ManifestError` when a classifier's labels do not match its output units.

    A single-unit classifier (binary sigmoid) needs two labels; any other needs
    one label per unit. Regression, and a classifier without labels, pass. A
    classifier needs float outputs of a fixed size.
    """
    if kind != "classification":
        return
    if not dtype.startswith("float") or output_shape is None or None in output_shape:
        raise ManifestError(
            f"output kind 'classification' needs float outputs of a fixed size; the model's "
            f"output is {dtype} of shape {list(output_shape) if output_shape is not None else '?'}"
        )
    if spec.labels is None:
        return
    units = math.prod(output_shape)
    expected = 2 if units == 1 else units
    if len(spec.labels) != expected:
        raise ManifestError(
            f"output.labels has {len(spec.labels)} labels but the model's {units} output unit(s) need {expected}"
        )


def format_results(
    name: str, outputs: np.ndarray | list[np.ndarray], *, spec: OutputSpec, kind: str
) -> list[dict[str, Any]]:
    """Format a batch of outputs ``(N, ...)`` from model ``name`` into ``N`` result dicts.

    ``outputs`` may also be a list of per-row arrays (rows of different shapes).
    """
    if isinstance(outputs, list):
        return [format_results(name, row[np.newaxis], spec=spec, kind=kind)[0] for row in outputs]
    if kind == "regression" and outputs.dtype.kind != "f":
        rows = outputs.reshape(len(outputs), -1)
        values = json_values(rows[:, 0] if rows.shape[1] == 1 else outputs, spec.decimals)
        return [{"name": name, "value": value} for value in values]
    outputs = np.asarray(outputs, dtype=np.float64)
    rows = outputs.reshape(len(outputs), -1)
    if kind == "regression":
        values = _rounded(rows[:, 0] if rows.shape[1] == 1 else outputs, spec.decimals)
        return [{"name": name, "value": value} for value in values]
    if rows.shape[1] == 1:
        return _binary(name, rows[:, 0], spec.labels or _BINARY_LABELS, spec.decimals)
    labels = spec.labels or _unit_labels(rows.shape[1])
    if spec.decimals is None and rows.size <= _PLAIN_VALUES:
        results = _classes_plain(name, rows.tolist(), labels)
        if results is not None:
            return results
    winners = rows.argmax(axis=1)
    scores = _rounded(rows[np.arange(len(rows)), winners], spec.decimals)
    values = _rounded(rows, spec.decimals)
    return [
        {"name": name, "value": value, "label": labels[winner], "score": score}
        for value, winner, score in zip(values, winners.tolist(), scores)
    ]


def format_outputs(
    name: str, outputs: dict[str, np.ndarray | list[np.ndarray]], *, decimals: int | None
) -> list[dict[str, Any]]:
    """Results of a model with several outputs: per row, ``{"name", "outputs": {<output>: <value>}}``.

    As for a regression, an output of one value per row is that value, not a list of one.
    """
    per_output = {
        key: [json_values(_unit(row), decimals) for row in value]
        if isinstance(value, list)
        else json_values(value[:, 0] if value.ndim == 2 and value.shape[1] == 1 else value, decimals)
        for key, value in outputs.items()
    }
    rows = len(next(iter(per_output.values())))
    return [{"name": name, "outputs": {key: values[i] for key, values in per_output.items()}} for i in range(rows)]


def _unit(row: np.ndarray) -> np.ndarray:
    return row[0] if row.shape == (1,) else row


def json_values(array: np.ndarray, decimals: int | None) -> Any:
    """Plain Python values of ``array`` (nested lists): floats rounded if ``decimals``, text decoded, NaN as
    ``None``."""
    array = np.asarray(array)
    if array.dtype.kind == "f":
        return _rounded(array.astype(np.float64), decimals)
    if array.dtype.kind in "OSU":
        return np.frompyfunc(_text, 1, 1)(array).tolist() if array.ndim else _text(array.item())
    return array.tolist()


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode("ascii")}
    return value


@functools.lru_cache(maxsize=64)
def _unit_labels(units: int) -> tuple[str, ...]:
    return tuple(str(i) for i in range(units))


def _classes_plain(name: str, rows: list[list[float]], labels: tuple[str, ...]) -> list[dict[str, Any]] | None:
    """The classification results of ``rows`` (float64 values as Python floats, unrounded), as the numpy path
    gives them: the first highest value wins, -0.0 reads 0.0. None when a value is not finite (the numpy path
    words those)."""
    results = []
    for row in rows:
        if not all(map(math.isfinite, row)):
            return None
        best = max(row)
        results.append(
            {"name": name, "value": [v + 0.0 for v in row], "label": labels[row.index(best)], "score": best + 0.0}
        )
    return results


def _binary(
    name: str, probabilities: np.ndarray, labels: tuple[str, ...], decimals: int | None
) -> list[dict[str, Any]]:
    """Results of a single-unit sigmoid: ``p >= 0.5`` picks ``labels[1]``."""
    positive = probabilities >= 0.5
    scores = _rounded(np.where(positive, probabilities, 1.0 - probabilities), decimals)
    values = _rounded(probabilities, decimals)
    return [
        {"name": name, "value": value, "label": labels[int(is_positive)], "score": score}
        for value, is_positive, score in zip(values, positive.tolist(), scores)
    ]


def _rounded(values: np.ndarray, decimals: int | None) -> Any:
    """Round (``decimals`` given) and return plain Python values; NaN and infinity become ``None``.

    Few values (a request's row) are rounded in plain Python (:func:`_round_plain`), more in one vectorised
    step: the same values, bit for bit."""
    if values.size <= _PLAIN_VALUES and (decimals is None or 0 <= decimals < len(_TENS)):
        return _round_plain(values.tolist(), decimals)
    rounded = (values if decimals is None else np.round(values, decimals)) + 0.0  # + 0.0 turns -0.0 into 0.0
    finite = np.isfinite(rounded)
    if finite.all():
        return rounded.tolist()
    return np.where(finite, rounded, None).tolist()


_TENS = tuple(10.0**n for n in range(23))  # exact as floats: numpy's np.round scales by these


def _round_plain(values: Any, decimals: int | None) -> Any:
    """``np.round(values, decimals) + 0.0`` of float64 values (a float, or nested lists of them), non-finite as
    None: numpy scales by 10**decimals, rounds half to even (``rint``, as Python's ``round``) and scales back."""
    if isinstance(values, list):
        return [_round_plain(value, decimals) for value in values]
    if decimals is not None:
        scale = _TENS[decimals]
        scaled = values * scale
        values = (float(round(scaled)) if math.isfinite(scaled) else scaled) / scale
    values += 0.0  # -0.0 reads 0.0
    return values if math.isfinite(values) else None
