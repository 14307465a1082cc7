"""One batch of named input arrays on its way into TensorFlow, converted once for every model.

Every model of a version runs on the same batch. A :class:`Feed` hands each
runner either the numpy arrays (TF1 sessions feed those) or TensorFlow
tensors, made on first request and shared by every later runner.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from .preprocess import scale_into

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
        scale_into(self.pixels, self.scale, self.offset, out)


def aligned_concatenate(
    parts: list[np.ndarray | Scaled], alignment: int = ALIGNMENT, *, memory: np.ndarray | None = None
) -> np.ndarray:
    """``np.concatenate(parts)`` into a buffer that starts on an ``alignment``-byte boundary: ``memory`` (bytes
    from :class:`BatchBuffers`, at least the batch's size plus ``alignment``) or else a new one.

    TensorFlow takes such a batch without copying it (:func:`as_tensor`).
    Object arrays (strings) are concatenated as they are; :class:`Scaled` parts are written as their values.
    """
    first = parts[0]
    if first.dtype == object:
        return np.concatenate(parts) if len(parts) > 1 else first
    shape = (sum(len(p) for p in parts), *first.shape[1:])
    nbytes = int(np.prod(shape)) * first.dtype.itemsize
    raw = np.empty(nbytes + alignment, np.uint8) if memory is None else memory
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


class BatchBuffers:
    """The memory one batcher puts its batches together in, kept from batch to batch: one buffer per input name,
    room for ``rows`` rows (more when a batch needs it).

    A new buffer per batch cost more than the batch's own copying: 32 images of 350x350x3 float32 are 47 MB,
    which the kernel maps, faults in and zeroes page by page for every batch, and unmaps after (283 against 105
    us per image; bench/NOTES.md, "Session 10"). Pages past what batches have written are never touched, so
    they hold no memory.

    Used by the batch thread only. A buffer an output of the batch may share memory with (a model that answers
    with its input, or a view of it) is never used again: :meth:`drop_shared` after every batch.
    """

    __slots__ = ("rows", "_held")

    def __init__(self, rows: int):
        self.rows = rows
        self._held: dict[str, np.ndarray] = {}

    def __bool__(self) -> bool:
        return bool(self._held)

    def concatenate(self, name: str, parts: list[np.ndarray | Scaled]) -> np.ndarray:
        """:func:`aligned_concatenate` of ``parts`` (the input ``name`` of each job of a batch), in this input's
        buffer."""
        first = parts[0]
        if first.dtype == object:
            return aligned_concatenate(parts)
        row_bytes = int(np.prod(first.shape[1:])) * first.dtype.itemsize
        rows = sum(len(p) for p in parts)
        held = self._held.get(name)
        if held is None or held.nbytes < rows * row_bytes + ALIGNMENT:
            held = self._held[name] = np.empty(max(rows, self.rows) * row_bytes + ALIGNMENT, np.uint8)
        return aligned_concatenate(parts, memory=held)

    def drop_shared(self, outputs: list[dict[str, np.ndarray]]) -> None:
        """Forget every buffer that one of ``outputs`` (per model, named arrays) may share memory with."""
        for name, held in list(self._held.items()):
            if any(np.may_share_memory(held, value) for named in outputs for value in named.values()):
                del self._held[name]

    def clear(self) -> None:
        """Give every buffer back (the batcher is idle)."""
        self._held.clear()
