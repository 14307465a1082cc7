"""Tensors of the Open Inference Protocol (KServe v2), JSON and Triton's binary extension.

A request body is JSON, or (binary tensor extension) ``Inference-Header-Content-Length``
bytes of JSON followed by the raw tensors, each input naming its
``parameters.binary_data_size``. Raw numbers are little-endian row-major;
``BYTES`` elements are a 4-byte little-endian length then the bytes.
"""
from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from yyai.compat.http import ProtocolError
from yyai.runtime.errors import PayloadTooLarge

DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(bool), "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"), "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"), "INT8": np.dtype("<i1"), "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"), "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
}
HEADER_LENGTH = "Inference-Header-Content-Length"


@dataclass(frozen=True)
class Request:
    """A parsed inference request: its JSON header and the binary tail (empty for pure JSON)."""

    header: dict[str, Any]
    binary: bytes


def parse_body(body: bytes, *, header_length: str | None, encoding: str | None, max_bytes: int) -> Request:
    """Split (and decompress, to at most ``max_bytes``) a body into the JSON header and the binary tensors."""
    if encoding in ("gzip", "deflate"):
        inflater = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
        try:
            body = inflater.decompress(body, max_bytes + 1)
        except zlib.error as exc:
            raise ProtocolError(f"the body is not valid {encoding} data: {exc}") from None
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
        header = json.loads(head)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"the inference request is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("the inference request must be a JSON object")
    return Request(header=header, binary=binary)


def read_inputs(request: Request) -> list[tuple[str, np.ndarray | list[bytes]]]:
    """Each input as (name, array) in request order; ``BYTES`` inputs as a list of byte strings."""
    inputs = request.header.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ProtocolError("'inputs' must be a non-empty list of tensors")
    offset, result = 0, []
    for tensor in inputs:
        if not isinstance(tensor, dict):
            raise ProtocolError("each input must be an object with name, shape, datatype and data")
        name, datatype, shape = tensor.get("name"), tensor.get("datatype"), tensor.get("shape")
        if not isinstance(name, str) or not isinstance(shape, list) or not all(
                isinstance(d, int) and d >= 0 for d in shape):
            raise ProtocolError("each input needs a 'name' and a 'shape' list of non-negative integers")
        if datatype != "BYTES" and datatype not in DTYPES:
            raise ProtocolError(f"input '{name}': unsupported datatype {datatype!r} "
                                f"(supported: {', '.join([*DTYPES, 'BYTES'])})")
        size = (tensor.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(request.binary):
                raise ProtocolError(f"input '{name}': binary_data_size {size} runs past the end of the body")
            raw, offset = request.binary[offset:offset + size], offset + size
            value = _bytes_elements(raw, name) if datatype == "BYTES" else _from_raw(raw, datatype, shape, name)
        elif "data" in tensor:
            value = _from_json(tensor["data"], datatype, shape, name)
        else:
            raise ProtocolError(f"input '{name}' has neither 'data' nor binary data")
        result.append((name, value))
    return result


def _from_raw(raw: bytes, datatype: str, shape: list[int], name: str) -> np.ndarray:
    dtype = DTYPES[datatype]
    if len(raw) != int(np.prod(shape)) * dtype.itemsize:
        raise ProtocolError(f"input '{name}': {len(raw)} bytes do not hold shape {shape} of {datatype}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def _from_json(data: Any, datatype: str, shape: list[int], name: str) -> np.ndarray | list[bytes]:
    if datatype == "BYTES":
        flat = np.asarray(data, dtype=object).ravel().tolist()
        if not all(isinstance(x, str) for x in flat):
            raise ProtocolError(f"input '{name}': BYTES data must be strings")
        return [x.encode() for x in flat]
    try:
        array = np.asarray(data, dtype=DTYPES[datatype])  # flat or nested, as the protocol allows
    except (TypeError, ValueError, OverflowError):
        raise ProtocolError(f"input '{name}': data is not a (flat or nested) list of {datatype} values") from None
    if array.size != int(np.prod(shape)):
        raise ProtocolError(f"input '{name}': {array.size} values do not fill shape {shape}")
    return array.reshape(shape)


def _bytes_elements(raw: bytes, name: str) -> list[bytes]:
    items, pos = [], 0
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise ProtocolError(f"input '{name}': a BYTES element length is cut off")
        (length,) = struct.unpack_from("<I", raw, pos)
        pos += 4
        if pos + length > len(raw):
            raise ProtocolError(f"input '{name}': a BYTES element runs past its data")
        items.append(raw[pos:pos + length])
        pos += length
    return items


def encode_outputs(outputs: dict[str, np.ndarray], binary: set[str]) -> tuple[list[dict], bytes]:
    """FP32 output tensors: JSON with flat ``data``, or ``binary_data_size`` + raw bytes for names in ``binary``."""
    tensors, tail = [], []
    for name, array in outputs.items():
        array = np.ascontiguousarray(array, dtype="<f4")
        tensor: dict[str, Any] = {"name": name, "datatype": "FP32", "shape": list(array.shape)}
        if name in binary:
            raw = array.tobytes()
            tensor["parameters"] = {"binary_data_size": len(raw)}
            tail.append(raw)
        else:
            tensor["data"] = array.ravel().tolist()
        tensors.append(tensor)
    return tensors, b"".join(tail)
