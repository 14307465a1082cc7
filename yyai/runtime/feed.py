"""One batch of named input arrays on its way into TensorFlow, converted once for every model.

Every model of a version runs on the same batch. A :class:`Feed` hands each
runner either the numpy arrays (TF1 sessions feed those) or TensorFlow
tensors, made on first request and shared by every later runner.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

ALIGNMENT = 64  # bytes: TensorFlow's CPU kernels use a buffer so aligned as it is (as_tensor)


def as_tensor(array: np.ndarray) -> tf.Tensor:
    """``array`` as a tensor, without a copy when the array allows it.

    A writeable, C-contiguous numeric array aligned to ALIGNMENT bytes (what
    the batcher builds) is shared with TensorFlow through DLPack; anything else
    is copied by ``tf.convert_to_tensor`` (15 ms per 47 MB, with the GIL held).
    An unaligned array must never be shared: TensorFlow aborts the process; nor
    can a read-only one (a request's bytes seen through ``np.frombuffer``).
    """
    if (
        array.dtype.kind in "fiu"
        and array.flags.c_contiguous
        and array.flags.writeable
        and array.size
        and array.ctypes.data % ALIGNMENT == 0
    ):
        return tf.experimental.dlpack.from_dlpack(array.__dlpack__())
    return tf.convert_to_tensor(array, dtype=tf.string if array.dtype == object else None)


class Feed:
    """Named input arrays; :meth:`tensors` converts each array once, for this feed and its renamed views."""

    __slots__ = ("arrays", "_converted")

    def __init__(self, arrays: dict[str, np.ndarray], _converted: dict[int, tf.Tensor] | None = None):
        self.arrays = arrays
        self._converted = {} if _converted is None else _converted

    def tensors(self) -> dict[str, tf.Tensor]:
        result = {}
        for name, array in self.arrays.items():
            tensor = self._converted.get(id(array))
            if tensor is None:
                tensor = self._converted[id(array)] = as_tensor(array)
            result[name] = tensor
        return result

    def renamed(self, names: dict[str, str]) -> "Feed":
        """The same arrays under other names (``{new: old}``), sharing their conversions."""
        return Feed({new: self.arrays[old] for new, old in names.items()}, self._converted)


class Scaled:
    """Rows of ``uint8`` pixels that stand for ``pixels * scale + offset`` in float32, computed only as a batch is
    put together, straight into the batch's buffer (:func:`aligned_concatenate`): one float32 pass per image
    instead of one in preprocessing and a copy into the batch. It has what a job asks of an array (``len``,
    ``dtype``, ``shape``, ``nbytes``: those of the values it stands for) and rows by index."""

    __slots__ = ("pixels", "scale", "offset", "shape", "nbytes")
    dtype = np.dtype(np.float32)

    def __init__(self, pixels: np.ndarray, scale: float, offset: float):
        self.pixels, self.scale, self.offset = pixels, np.float32(scale), np.float32(offset)
        self.shape, self.nbytes = pixels.shape, pixels.size * self.dtype.itemsize

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, rows) -> "Scaled":
        return Scaled(self.pixels[rows], self.scale, self.offset)

    def write(self, out: np.ndarray) -> None:
        """The values into ``out`` (float32, this shape): the same bits as preprocess.scale_pixels gives."""
        np.multiply(self.pixels, self.scale, out=out, dtype=np.float32)
        out += self.offset


def aligned_concatenate(parts: list[np.ndarray | Scaled], alignment: int = ALIGNMENT) -> np.ndarray:
    """``np.concatenate(parts)`` into a new buffer that starts on an ``alignment``-byte boundary.

    TensorFlow takes such a batch without copying it (:func:`as_tensor`).
    Object arrays (strings) are concatenated as they are; :class:`Scaled` parts are written as their values.
    """
    first = parts[0]
    if first.dtype == object:
        return np.concatenate(parts) if len(parts) > 1 else first
    shape = (sum(len(p) for p in parts), *first.shape[1:])
    nbytes = int(np.prod(shape)) * first.dtype.itemsize
    raw = np.empty(nbytes + alignment, np.uint8)
    start = -raw.ctypes.data % alignment
    out = raw[start : start + nbytes].view(first.dtype).reshape(shape)
    if not any(isinstance(part, Scaled) for part in parts):
        return np.concatenate(parts, out=out)
    row = 0
    for part in parts:
        rows = out[row : row + len(part)]
        if isinstance(part, Scaled):
            part.write(rows)
        else:
            rows[...] = part
        row += len(part)
    return out
