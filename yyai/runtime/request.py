"""A request's named values -> jobs for the batcher, checked against one signature.

Values come per input name, in one of two layouts:

* **rows** (``columnar=False``): one value per row (JSON ``instances``, a list
  of images);
* **columnar** (``columnar=True``): one tensor per input, its first axis the
  rows when the signature is batched; for an unbatched signature the tensor is
  the whole input (one row).

A value may hold :class:`~yyai.runtime.tensors.EncodedImage` bytes: for the
image input (numeric, ``(H, W, C)`` per row) they are decoded and preprocessed
as the manifest's ``[input]`` says; for a string input they are passed as they
are. A signature with one input takes it under any name.

Rows whose inputs differ in shape (images at their own size) become separate
jobs; so does every row of an unbatched signature.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import preprocess
from .batching import Job
from .errors import BadTensor, ImageTooLarge, InputError
from .feed import Scaled
from .limits import RequestLimits
from .manifest import InputSpec
from .signature import Signature, TensorSpec
from .tensors import EncodedImage, Rows, coerce, group_rows, row_count


@dataclass(frozen=True)
class Prepared:
    """A checked request: its row count and the jobs that cover its rows (with their row indices)."""

    rows: int
    jobs: list[tuple[list[int], Job]]


def image_shape(spec: TensorSpec, batched: bool) -> tuple[tuple[int | None, int | None, int | None], bool] | None:
    """``((H, W, C), leading_one)`` when images can feed ``spec``, else None.

    Per row, an image input is ``(H, W, C)``; an unbatched one may also be
    ``(1, H, W, C)`` (``leading_one``). ``None`` stands for any length.
    """
    if spec.dtype in ("string", "bool") or spec.shape is None:
        return None
    shape = spec.shape
    if not batched and len(shape) == 4 and shape[0] in (1, None):
        return (shape[1], shape[2], shape[3]), True
    if len(shape) != 3:
        return None
    return (shape[0], shape[1], shape[2]), False


def image_input(signature: Signature, spec: InputSpec) -> TensorSpec | None:
    """The input images feed: the one ``[input] name`` names, else the only one; None if none can."""
    if spec.name is not None:
        candidates = [s for s in signature.inputs if s.name == spec.name]
    else:
        candidates = list(signature.inputs) if len(signature.inputs) == 1 else []
    if not candidates:
        return None
    target = candidates[0]
    if target.dtype == "string" or image_shape(target, signature.batched) is not None:
        return target
    return None


def prepare(
    values: dict[str, Any], *, signature: Signature, input_spec: InputSpec, columnar: bool, limits: RequestLimits
) -> Prepared:
    """Check ``values`` against ``signature`` and split them into batcher jobs; InputError on anything wrong."""
    named = _by_name(values, signature)
    counts: dict[str, int] = {}
    columns: dict[str, np.ndarray | list[np.ndarray]] = {}
    budget = _PixelBudget(limits)
    for spec in signature.inputs:
        value = named[spec.name]
        if isinstance(value, np.ndarray) and value.dtype == object and spec.dtype != "string":
            value = Rows(value.reshape(-1).tolist())  # a tensor of image files: one row each
        elif columnar and not signature.batched:
            value = Rows([value])
        if isinstance(value, list) and len(value) > limits.max_rows:
            raise BadTensor(f"input '{spec.name}' has {len(value)} rows; the limit is {limits.max_rows}")
        if spec.dtype == "string":
            column = coerce(value, spec, rows_first=True, batched=signature.batched)
            for item in column.reshape(-1):
                if isinstance(item, EncodedImage):
                    budget.check(preprocess.image_dimensions(item))
        elif isinstance(value, list) and value and all(isinstance(r, EncodedImage) for r in value):
            column = _images(value, spec, signature, input_spec, budget)
        elif isinstance(value, list) and any(isinstance(r, EncodedImage) for r in value):
            raise BadTensor(f"input '{spec.name}' mixes images and other values")
        else:
            column = coerce(value, spec, rows_first=True, batched=signature.batched)
        if len(column) == 0:
            raise BadTensor(f"input '{spec.name}' has no rows")
        if len(column) > limits.max_rows:
            raise BadTensor(f"input '{spec.name}' has {len(column)} rows; the limit is {limits.max_rows}")
        row_count(spec.name, column, counts)
        columns[spec.name] = column
    rows = next(iter(counts.values()))
    if signature.batched:
        jobs = [(indices, Job(signature.name, group)) for indices, group in group_rows(columns, rows)]
    else:
        jobs = [
            ([i], Job(signature.name, {name: _one(column, i) for name, column in columns.items()}, batched=False))
            for i in range(rows)
        ]
    return Prepared(rows=rows, jobs=jobs)


def check_image_sizes(images: list[bytes], limits: RequestLimits) -> None:
    """ImageTooLarge when one image, or all of them together, has more pixels than ``limits`` allow; read from
    their headers, nothing decoded (what :func:`prepare` checks, for requests a handler takes whole)."""
    budget = _PixelBudget(limits)
    for data in images:
        budget.check(preprocess.image_dimensions(data))


def _by_name(values: dict[str, Any], signature: Signature) -> dict[str, Any]:
    names = signature.input_names
    if len(names) == 1 and len(values) == 1:
        return {names[0]: next(iter(values.values()))}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise BadTensor(f"unknown input {', '.join(map(repr, unknown))}; the inputs are {_list(names)}")
    missing = [n for n in names if n not in values]
    if missing:
        raise BadTensor(f"missing input {', '.join(map(repr, missing))}; the inputs are {_list(names)}")
    return values


def _list(names) -> str:
    return ", ".join(f"'{n}'" for n in names)


def _images(
    rows: list[EncodedImage], spec: TensorSpec, signature: Signature, input_spec: InputSpec, budget: "_PixelBudget"
) -> np.ndarray | list[np.ndarray]:
    shape = image_shape(spec, signature.batched)
    if shape is None:
        raise InputError(
            f"input '{spec.name}' does not take images (it takes {spec.dtype} of shape "
            f"{spec.shape_text()}); send numbers"
        )
    hwc, leading_one = shape
    # A batched float32 input gets the uint8 pixels, scaled only as its batch is put together (feed.Scaled).
    later = signature.batched and not leading_one and spec.numpy_dtype == np.float32
    decoded = []
    for data in rows:
        budget.check(preprocess.image_dimensions(data))
        pixels = preprocess.decode_model_pixels(data, spec=input_spec, input_shape=hwc, max_pixels=budget.max_pixels)
        array = pixels if later else preprocess.scale_pixels(pixels, spec=input_spec, dtype=spec.numpy_dtype)
        decoded.append(array[np.newaxis] if leading_one else array)
    first = decoded[0].shape
    if len(decoded) > 1 and any(d.shape != first for d in decoded):  # images at their own sizes: one job each
        return [preprocess.scale_pixels(d, spec=input_spec) for d in decoded] if later else decoded
    # One image: a view with the row axis (np.stack would copy it once more).
    column = decoded[0][np.newaxis] if len(decoded) == 1 else np.stack(decoded)
    return Scaled(column, input_spec.pixel_scale(False), input_spec.offset) if later else column


def _one(column: np.ndarray | list[np.ndarray], row: int) -> np.ndarray:
    return np.asarray(column[row])[np.newaxis]


class _PixelBudget:
    """The pixel limits of one request, checked from each image's header before anything is decoded."""

    def __init__(self, limits: RequestLimits):
        self.max_pixels = limits.max_pixels
        self.left = limits.max_request_pixels
        self.total = limits.max_request_pixels

    def check(self, size: tuple[int, int] | None) -> None:
        if size is None:
            return
        pixels = size[0] * size[1]
        if pixels > self.max_pixels:
            raise ImageTooLarge(f"image is {size[0]}x{size[1]} = {pixels} pixels; the limit is {self.max_pixels}")
        self.left -= pixels
        if self.left < 0:
            raise ImageTooLarge(
                f"the images of this request have more than {self.total} pixels together; send fewer or smaller images"
            )
