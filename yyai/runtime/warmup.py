"""Warm-up: run a freshly loaded signature before it serves, and learn from its answers.

What it runs, first found first:

* a SavedModel's own TF Serving warm-up requests (``assets.extra/tf_serving_warmup_requests``, a TFRecord
  of ``PredictionLog``; its ``predict_log`` records, at most :data:`MAX_RECORDS`, as TF Serving does);
* the version's ``warmup.npz`` (:data:`WARMUP_FILE`): one array per input name, batch first;
* zeros of each input's shape, batch 1 and 2 when the signature is batched, an unknown dimension taking
  its length from the manifest's ``[warmup] shapes`` or else :data:`FREE_DIM`.

Real requests (the first two) must succeed, as must zeros of fully known inputs. Zeros that the model
may not accept (strings, unknown dimensions the manifest does not size) are best effort: an exception is
logged, a wrong output shape is refused with the key that fixes it. A signature whose outputs do not follow
the batch is served unbatched. The outputs whose rows were probability distributions are reported
(:func:`distributions`), for guessing a classification.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ModelLoadError
from .feed import Feed
from .opened import Runner, reason_of
from .signature import Signature, TensorSpec

log = logging.getLogger(__name__)

WARMUP_FILE = "warmup.npz"
TF_SERVING_REQUESTS = Path("assets.extra") / "tf_serving_warmup_requests"
MAX_RECORDS = 1000
FREE_DIM = 32  # the length zeros give a dimension of any length
MAX_ROW_ELEMENTS = 1 << 25  # 32 Mi values (128 MiB of float32) per input or output row


@dataclass(frozen=True)
class Warmed:
    """What warm-up learnt: the signature as it serves (maybe unbatched) and its probability outputs."""

    signature: Signature
    distributions: frozenset[str]


def warm_up(
    path: Path,
    signature: Signature,
    runner: Runner,
    *,
    shapes: dict[str, tuple[int, ...]] | None = None,
    values: Path | None = None,
) -> Warmed:
    """Warm ``signature`` of the model at ``path`` up (see the module docstring); ModelLoadError on a refusal."""
    shapes = shapes or {}
    _check_shapes(path, signature, shapes)
    requests = _requests(path, signature, values)
    if requests:
        return _replay(path, signature, runner, requests)
    return _zeros_warm_up(path, signature, runner, shapes)


def _replay(path: Path, signature: Signature, runner: Runner, requests: list[tuple[str, Feed]]) -> Warmed:
    found: frozenset[str] = frozenset()
    for where, feed in requests:
        try:
            outputs = runner(feed)
        except Exception as exc:
            raise ModelLoadError(path, f"warm-up request {where} failed: {reason_of(exc)}") from exc
        rows = len(next(iter(feed.arrays.values()))) if signature.batched else None
        if rows is not None and not _follows_batch(outputs, rows):
            signature, rows = _unbatched(signature), None
        _check_outputs(path, signature, outputs, rows, hint="")
        found = distributions(outputs, rows)
    return Warmed(signature, found)


def _zeros_warm_up(path: Path, signature: Signature, runner: Runner, shapes: dict[str, tuple[int, ...]]) -> Warmed:
    sized = {s.name: shapes.get(s.name, s.shape) for s in signature.inputs}
    certain = all(shape is not None and None not in shape for shape in sized.values()) and all(
        s.dtype != "string" for s in signature.inputs
    )
    free = [s.name for s in signature.inputs if s.name not in shapes and (s.shape is None or None in s.shape)]
    hint = (
        (
            f"; warm-up gave each unknown dimension the length {FREE_DIM}: give real shapes in app.toml, "
            f"[warmup] shapes = {{{free[0]} = [...]}} (without the batch dimension), or sample inputs in "
            f"{WARMUP_FILE}"
        )
        if free
        else ""
    )
    found: frozenset[str] = frozenset()
    try:
        for rows in (1, 2) if signature.batched else (None,):
            outputs = runner(Feed({s.name: _zeros(s, sized[s.name], rows) for s in signature.inputs}))
            if rows is not None and not _follows_batch(outputs, rows):
                log.info(
                    "%s: signature %s gives outputs without a batch dimension; served unbatched", path, signature.name
                )
                return _zeros_warm_up(path, _unbatched(signature), runner, shapes)
            _check_outputs(path, signature, outputs, rows, hint=hint, finite=certain)
            found = distributions(outputs, rows)
    except ModelLoadError:
        raise
    except Exception as exc:
        if certain:
            raise ModelLoadError(path, f"warm-up failed: {reason_of(exc)}") from exc
        log.warning(
            "%s: warm-up on synthetic inputs failed (%s)%s; its first requests warm it up instead",
            path,
            reason_of(exc),
            hint,
        )
    return Warmed(signature, found)


def distributions(outputs: dict[str, np.ndarray], rows: int | None) -> frozenset[str]:
    """Outputs of several float units per row, each row in [0, 1] and summing to 1: a softmax's, whatever the
    input (raw logits of zeros are the biases, which almost never do)."""
    found = set()
    for name, value in outputs.items():
        value = np.asarray(value)
        if value.dtype.kind != "f" or value.size == 0:
            continue
        flat = value.reshape(len(value) if rows is not None else 1, -1).astype(np.float64)
        if flat.shape[1] > 1 and np.all((flat >= 0) & (flat <= 1)) and np.allclose(flat.sum(axis=1), 1, atol=1e-3):
            found.add(name)
    return frozenset(found)


def _check_shapes(path: Path, signature: Signature, shapes: dict[str, tuple[int, ...]]) -> None:
    """The manifest's ``[warmup] shapes`` must name inputs and fit their known dimensions."""
    for name, shape in shapes.items():
        spec = next((s for s in signature.inputs if s.name == name), None)
        if spec is None:
            raise ModelLoadError(
                path,
                f"app.toml warmup.shapes names '{name}', which is not an input "
                f"(inputs: {', '.join(signature.input_names)})",
            )
        if spec.shape is not None and (
            len(shape) != len(spec.shape)
            or any(want is not None and want != have for want, have in zip(spec.shape, shape))
        ):
            raise ModelLoadError(
                path,
                f"app.toml warmup.shapes gives '{name}' the shape {list(shape)}, which does "
                f"not fit its shape {spec.shape_text()} (give it without the batch dimension)",
            )
        if int(np.prod(shape)) > MAX_ROW_ELEMENTS:
            raise ModelLoadError(path, f"app.toml warmup.shapes gives '{name}' more than {MAX_ROW_ELEMENTS} values")


def _requests(path: Path, signature: Signature, values: Path | None) -> list[tuple[str, Feed]]:
    """The real requests to warm up on: the SavedModel's TF Serving records, else the version's values file."""
    records = Path(path) / TF_SERVING_REQUESTS
    if Path(path).is_dir() and records.is_file():
        return _tf_serving_requests(path, signature, records)
    if values is not None and values.is_file():
        return [(f"in {values.name}", _values_feed(path, signature, values))]
    return []


def _tf_serving_requests(path: Path, signature: Signature, records: Path) -> list[tuple[str, Feed]]:
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    feeds = []
    try:
        for index, raw in enumerate(tf.data.TFRecordDataset(str(records)).take(MAX_RECORDS)):
            entry = prediction_log_pb2.PredictionLog.FromString(raw.numpy())
            if not entry.HasField("predict_log"):
                continue  # classify, regress and multi-inference logs: this server warms up predict only
            inputs = {key: tf.make_ndarray(tensor) for key, tensor in entry.predict_log.request.inputs.items()}
            where = f"record {index} of {TF_SERVING_REQUESTS}"
            feeds.append((where, _checked_feed(path, signature, inputs, where)))
    except ModelLoadError:
        raise
    except Exception as exc:  # a damaged TFRecord or a record that is not a PredictionLog
        raise ModelLoadError(path, f"{TF_SERVING_REQUESTS} cannot be read: {reason_of(exc)}") from exc
    return feeds


def _values_feed(path: Path, signature: Signature, values: Path) -> Feed:
    try:
        with np.load(values, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except Exception as exc:  # not an .npz, damaged, or holding objects (pickles are refused)
        raise ModelLoadError(path, f"{values.name} cannot be read as a NumPy .npz of arrays: {reason_of(exc)}") from exc
    return _checked_feed(path, signature, arrays, values.name)


def _checked_feed(path: Path, signature: Signature, arrays: dict[str, np.ndarray], where: str) -> Feed:
    missing = [name for name in signature.input_names if name not in arrays]
    if missing:
        raise ModelLoadError(
            path,
            f"warm-up {where} gives no input {', '.join(missing)} (it gives {', '.join(sorted(arrays)) or 'none'})",
        )
    return Feed({name: arrays[name] for name in signature.input_names})


def _zeros(spec: TensorSpec, shape: tuple[int | None, ...] | None, rows: int | None) -> np.ndarray:
    dims = list(shape or ())
    free = dims.count(None)
    fill = FREE_DIM if spec.known_elements() * FREE_DIM**free <= MAX_ROW_ELEMENTS else 1
    full = ([rows] if rows is not None else []) + [fill if d is None else d for d in dims]
    if spec.dtype == "string":
        return np.full(full, b"", dtype=object)
    return np.zeros(full, dtype=spec.numpy_dtype)


def _follows_batch(outputs: dict[str, np.ndarray], rows: int) -> bool:
    return all(np.ndim(v) >= 1 and np.shape(v)[0] == rows for v in outputs.values())


def _unbatched(signature: Signature) -> Signature:
    def full(spec: TensorSpec) -> TensorSpec:
        return dataclasses.replace(spec, shape=None if spec.shape is None else (None, *spec.shape))

    return Signature(
        signature.name,
        tuple(map(full, signature.inputs)),
        tuple(dataclasses.replace(s, shape=None) for s in signature.outputs),
        batched=False,
    )


def _check_outputs(
    path: Path, signature: Signature, outputs: dict, rows: int | None, *, hint: str, finite: bool = True
) -> None:
    missing = [s.name for s in signature.outputs if s.name not in outputs]
    if missing:
        raise ModelLoadError(path, f"warm-up gave no output {', '.join(missing)}")
    for spec in signature.outputs:
        value = np.asarray(outputs[spec.name])
        got = value.shape[1:] if rows is not None else value.shape
        if spec.shape is not None and (
            len(got) != len(spec.shape) or any(want is not None and want != have for want, have in zip(spec.shape, got))
        ):
            raise ModelLoadError(
                path, f"warm-up gave output '{spec.name}' of shape {list(got)}, expected {spec.shape_text()}{hint}"
            )
        if finite and value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            raise ModelLoadError(path, f"warm-up gave non-finite values in output '{spec.name}'")
