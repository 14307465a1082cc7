"""A model's signature: ordered, named inputs and outputs, each with a dtype and a shape.

* ``dtype`` is a canonical name: ``float16|32|64``, ``int8..64``, ``uint8..64``,
  ``bool`` or ``string`` (bytes; numpy ``object`` arrays of ``bytes``).
* ``shape`` has ``None`` for a dimension of any length, or is ``None`` when even
  the rank is unknown (TF1 graphs may say nothing about an output).
* A **batched** signature takes a free leading batch dimension on every input
  and gives one on every output; its specs' shapes leave that dimension out
  (they describe one row). An unbatched signature (a TF1 placeholder without a
  batch dimension, a function that reduces over its whole input) is served one
  request at a time; its specs' shapes are the whole tensors'.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SERVING_DEFAULT = "serving_default"

DTYPES: dict[str, np.dtype] = {
    "float16": np.dtype(np.float16),
    "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
    "int8": np.dtype(np.int8),
    "int16": np.dtype(np.int16),
    "int32": np.dtype(np.int32),
    "int64": np.dtype(np.int64),
    "uint8": np.dtype(np.uint8),
    "uint16": np.dtype(np.uint16),
    "uint32": np.dtype(np.uint32),
    "uint64": np.dtype(np.uint64),
    "bool": np.dtype(np.bool_),
    "string": np.dtype(object),
}
Shape = tuple[int | None, ...] | None


def dtype_name(dtype) -> str:
    """The canonical name of a numpy or TensorFlow dtype (or its name); ValueError if unsupported."""
    name = getattr(dtype, "name", None) or str(dtype)
    name = {"bytes": "string", "object": "string", "str": "string", "bool_": "bool"}.get(name, name)
    if name not in DTYPES:
        raise ValueError(f"dtype {name} is not supported (supported: {', '.join(DTYPES)})")
    return name


@dataclass(frozen=True)
class TensorSpec:
    """One named input or output."""

    name: str
    dtype: str
    shape: Shape

    @property
    def numpy_dtype(self) -> np.dtype:
        return DTYPES[self.dtype]

    @property
    def fully_defined(self) -> bool:
        return self.shape is not None and all(d is not None for d in self.shape)

    def known_elements(self) -> int:
        """Product of the known dimensions (1 for a scalar or an unknown rank)."""
        return math.prod(d for d in (self.shape or ()) if d is not None)

    def shape_text(self) -> str:
        """``[28, 28, 1]``, with ``None`` for any length, or ``unknown`` rank."""
        return "unknown" if self.shape is None else "[" + ", ".join(str(d) for d in self.shape) + "]"

    def describe(self, *, batched: bool) -> dict:
        """JSON-ready: name, dtype and the full shape (``None`` first for the batch when batched)."""
        shape = None if self.shape is None else ([None] if batched else []) + list(self.shape)
        return {"name": self.name, "dtype": self.dtype, "shape": shape}


@dataclass(frozen=True)
class Signature:
    """A callable view of a model: its named inputs and outputs, in order."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    batched: bool

    def input(self, name: str) -> TensorSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.outputs)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "batched": self.batched,
            "inputs": [s.describe(batched=self.batched) for s in self.inputs],
            "outputs": [s.describe(batched=self.batched) for s in self.outputs],
        }


def leading_batch(shapes: list[Shape]) -> bool:
    """True when every shape has a free leading dimension (a batch dimension)."""
    return bool(shapes) and all(s is not None and len(s) >= 1 and s[0] is None for s in shapes)


def row_shape(shape: Shape, batched: bool) -> Shape:
    """A full shape without its batch dimension when ``batched``."""
    return shape[1:] if batched and shape is not None else shape


def pick_signature(available: list[str], wanted: str | None, *, where: str) -> str:
    """The signature to serve: ``wanted``, else ``serving_default``, else the only one; ValueError otherwise."""
    if wanted is not None:
        if wanted not in available:
            raise ValueError(f"{where} has no signature '{wanted}' (signatures: {', '.join(available) or 'none'})")
        return wanted
    if SERVING_DEFAULT in available:
        return SERVING_DEFAULT
    if len(available) == 1:
        return available[0]
    raise ValueError(
        f"{where} has no '{SERVING_DEFAULT}' signature and several others "
        f'({", ".join(available)}); name one with signature = "..." in app.toml'
    )
