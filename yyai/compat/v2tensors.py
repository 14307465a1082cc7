"""Tensors of the Open Inference Protocol (KServe v2), JSON and Triton's binary extension.

A request body is JSON, or (binary tensor extension) ``Inference-Header-Content-Length``
bytes of JSON followed by the raw tensors, each input naming its
``parameters.binary_data_size``. Raw numbers are little-endian row-major;
``BYTES`` elements are a 4-byte little-endian length then the bytes.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from yyai import bounded_json
from yyai.compat.http import ProtocolError
from yyai.runtime.errors import PayloadTooLarge
from yyai.runtime.tensors import MAX_RANK, EncodedImage

DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(bool),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
DATATYPES = {dtype: name for name, dtype in DTYPES.items()}  # numpy dtype -> v2 datatype
HEADER_LENGTH = "Inference-Header-Content-Length"


def datatype_of(dtype: np.dtype) -> str:
    """The v2 datatype of a numpy dtype (``object``: BYTES)."""
    if dtype == np.dtype(object):
        return "BYTES"
    if dtype not in DATATYPES:
        raise ProtocolError(f"the output dtype {dtype} has no v2 datatype")
    return DATATYPES[dtype]


@dataclass(frozen=True)
class Request:
    """A parsed inference request: its JSON header and the binary tail (empty for pure JSON)."""

    header: dict[str, Any]
    binary: bytes


def parse_body(
    body: bytes,
    *,
    header_length: str | None,
    encoding: str | None,
    max_bytes: int,
    max_depth: int = bounded_json.DEFAULT_MAX_DEPTH,
) -> Request:
    """Split (and decompress, to at most ``max_bytes``) a body into the JSON header and the binary tensors."""
    if encoding in ("gzip", "deflate"):
        inflater = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
        try:
            body = inflater.decompress(body, max_bytes + 1)
        except zlib.error:
            raise ProtocolError(f"the body is not valid {encoding} data") from None
        if len(body) > max_bytes:
            raise PayloadTooLarge(f"the decompressed body is larger than the limit of {max_bytes} bytes")
    if header_length is not None:
        try:
            size = int(header_length)
        except ValueError:
            raise ProtocolError(f"{HEADER_LENGTH} is not a number") from None
        if not 0 < size <= len(body):
            raise ProtocolError(f"{HEADER_LENGTH} {size} does not fit the body of {len(body)} bytes")
        head, binary = body[:size], body[size:]
    else:
        head, binary = body, b""
    if not head:
        raise ProtocolError("the request body is empty; send a JSON inference request")
    try:
        header = bounded_json.loads(head, max_depth=max_depth)
    except bounded_json.JSONError as exc:
        raise ProtocolError(f"the inference request: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("the inference request must be a JSON object")
    return Request(header=header, binary=binary)


def read_inputs(request: Request, *, max_bytes: int, max_strings: int) -> dict[str, np.ndarray]:
    """Each input as an array of its declared shape, by name; ``BYTES`` elements as :class:`EncodedImage`.

    Declared shapes are checked (rank, sign, size against ``max_bytes``, ``BYTES`` elements against
    ``max_strings``) before anything is decoded or allocated.
    """
    inputs = request.header.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ProtocolError("'inputs' must be a non-empty list of tensors")
    offset, result = 0, {}
    for tensor in inputs:
        if not isinstance(tensor, dict):
            raise ProtocolError("each input must be an object with name, shape, datatype and data")
        name, datatype, shape = tensor.get("name"), tensor.get("datatype"), tensor.get("shape")
        if (
            not isinstance(name, str)
            or not isinstance(shape, list)
            or not all(type(d) is int and d >= 0 for d in shape)
        ):
            raise ProtocolError("each input needs a 'name' and a 'shape' list of non-negative integers")
        if len(shape) > MAX_RANK:
            raise ProtocolError(f"input '{name}' has {len(shape)} dimensions; the limit is {MAX_RANK}")
        if datatype != "BYTES" and datatype not in DTYPES:
            raise ProtocolError(
                f"input '{name}': unsupported datatype {datatype!r} (supported: {', '.join([*DTYPES, 'BYTES'])})"
            )
        if name in result:
            raise ProtocolError(f"input '{name}' is given twice")
        elements = math.prod(shape)
        if datatype != "BYTES" and elements * DTYPES[datatype].itemsize > max_bytes:
            raise PayloadTooLarge(f"input '{name}' of shape {shape} holds more than the limit of {max_bytes} bytes")
        if datatype == "BYTES" and elements > max_strings:
            raise PayloadTooLarge(
                f"input '{name}' of shape {shape} holds {elements} BYTES elements; the limit is {max_strings}"
            )
        parameters = _object(tensor.get("parameters"), f"input '{name}': 'parameters'")
        size = parameters.get("binary_data_size")
        if size is not None:
            if type(size) is not int or size < 0 or offset + size > len(request.binary):
                raise ProtocolError(f"input '{name}': binary_data_size {size} runs past the end of the body")
            raw, offset = request.binary[offset : offset + size], offset + size
            value = (
                _strings(_bytes_elements(raw, name, elements), shape, name)
                if datatype == "BYTES"
                else _from_raw(raw, datatype, shape, name)
            )
        elif "data" in tensor:
            value = _from_json(tensor["data"], datatype, shape, name)
        else:
            raise ProtocolError(f"input '{name}' has neither 'data' nor binary data")
        result[name] = value
    return result


def _object(value: Any, where: str) -> dict:
    """An optional JSON object (``parameters``); ProtocolError for anything else."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProtocolError(f"{where} must be a JSON object")
    return value


def parameters_of(header: dict) -> dict:
    """The request's ``parameters`` object (empty when absent)."""
    return _object(header.get("parameters"), "'parameters'")


def _from_raw(raw: bytes, datatype: str, shape: list[int], name: str) -> np.ndarray:
    dtype = DTYPES[datatype]
    if len(raw) != math.prod(shape) * dtype.itemsize:
        raise ProtocolError(f"input '{name}': {len(raw)} bytes do not hold shape {shape} of {datatype}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def _from_json(data: Any, datatype: str, shape: list[int], name: str) -> np.ndarray:
    if datatype == "BYTES":
        flat = _flatten(data)
        if not all(isinstance(x, str) for x in flat):
            raise ProtocolError(f"input '{name}': BYTES data must be strings")
        return _strings([x.encode() for x in flat], shape, name)
    try:
        array = np.asarray(data, dtype=DTYPES[datatype])  # flat or nested, as the protocol allows
    except (TypeError, ValueError, OverflowError):
        raise ProtocolError(f"input '{name}': data is not a (flat or nested) list of {datatype} values") from None
    if array.size != math.prod(shape):
        raise ProtocolError(f"input '{name}': {array.size} values do not fill shape {shape}")
    return array.reshape(shape)


def _flatten(data: Any) -> list:
    if not isinstance(data, list):
        return [data]
    return [item for part in data for item in _flatten(part)]


def _strings(items: list[bytes], shape: list[int], name: str) -> np.ndarray:
    if len(items) != math.prod(shape):
        raise ProtocolError(f"input '{name}': {len(items)} BYTES elements do not fill shape {shape}")
    array = np.empty(len(items), dtype=object)
    array[:] = [EncodedImage(item) for item in items]
    return array.reshape(shape)


def _bytes_elements(raw: bytes, name: str, count: int) -> list[bytes]:
    """The ``count`` length-prefixed elements of ``raw``; ProtocolError when it holds more or fewer."""
    items, pos = [], 0
    while pos < len(raw):
        if len(items) == count:
            raise ProtocolError(f"input '{name}': more BYTES elements than its shape holds ({count})")
        if pos + 4 > len(raw):
            raise ProtocolError(f"input '{name}': a BYTES element length is cut off")
        (length,) = struct.unpack_from("<I", raw, pos)
        pos += 4
        if pos + length > len(raw):
            raise ProtocolError(f"input '{name}': a BYTES element runs past its data")
        items.append(raw[pos : pos + length])
        pos += length
    return items


def encode_outputs(outputs: dict[str, np.ndarray], binary: set[str]) -> tuple[list[dict], bytes]:
    """Output tensors in their own datatypes: JSON ``data`` (flat), or ``binary_data_size`` + raw bytes
    for names in ``binary``."""
    tensors, tail = [], []
    for name, array in outputs.items():
        datatype = datatype_of(array.dtype)
        tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if name in binary:
            raw = _raw(array, datatype)
            tensor["parameters"] = {"binary_data_size": len(raw)}
            tail.append(raw)
        else:
            tensor["data"] = _json_data(array, name, datatype)
        tensors.append(tensor)
    return tensors, b"".join(tail)


def _raw(array: np.ndarray, datatype: str) -> bytes:
    if datatype == "BYTES":
        return b"".join(struct.pack("<I", len(item)) + item for item in array.ravel())
    return np.ascontiguousarray(array, dtype=DTYPES[datatype]).tobytes()


def _json_data(array: np.ndarray, name: str, datatype: str) -> list:
    flat = array.ravel()
    if datatype != "BYTES":
        return flat.tolist()
    try:
        return [item.decode("utf-8") for item in flat]
    except UnicodeDecodeError:
        raise ProtocolError(
            f"output '{name}' holds bytes that are not text; request it as binary data (parameters.binary_data)"
        ) from None
