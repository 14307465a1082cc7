"""TF Serving's protobuf messages, built once for gRPC and REST alike.

The REST endpoints render these same messages as JSON (the way TF Serving's own
REST layer does, proto field names and default values included), so the two
transports can never disagree on a shape, a dtype or a state.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from google.protobuf.message import Message
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow.core.protobuf import error_codes_pb2, meta_graph_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, model_pb2, status_pb2

from yyai.fleet.process_registry import get_registry
from yyai.runtime.errors import BadTensor, PayloadTooLarge, VersionNotFound
from yyai.runtime.registry import APP_NAME_PATTERN
from yyai.runtime.servable import ServingVersion
from yyai.runtime.signature import DTYPES, TensorSpec
from yyai.runtime.tensors import MAX_RANK, EncodedImage
from yyai.services import addressing
from yyai.services.addressing import Address

NAME_PATTERN = rf"{APP_NAME_PATTERN}(?:\.[^/:]+)?"  # for URLs: <app> or <app>.<model>
PREDICT_METHOD = "tensorflow/serving/predict"
VersionStatus = get_model_status_pb2.ModelVersionStatus
STATES = {
    "START": VersionStatus.START,
    "LOADING": VersionStatus.LOADING,
    "AVAILABLE": VersionStatus.AVAILABLE,
    "UNLOADING": VersionStatus.UNLOADING,
    "END": VersionStatus.END,
    "FAILED": VersionStatus.END,
    "STANDBY": VersionStatus.AVAILABLE,  # unloaded under the memory budget: its next request loads it
}


def to_json(message: Message) -> dict[str, Any]:
    """A message as TF Serving's REST API writes it: proto field names, defaults printed."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def model_spec(version: ServingVersion, address: Address, signature_name: str = "") -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=address.name, signature_name=signature_name)
    spec.version.value = addressing.version_number(version.id)
    return spec


def _tensor_info(spec: TensorSpec, batched: bool) -> meta_graph_pb2.TensorInfo:
    shape = tensor_shape_pb2.TensorShapeProto(unknown_rank=spec.shape is None)
    if spec.shape is not None:
        dims = ([None] if batched else []) + list(spec.shape)
        shape.dim.extend(tensor_shape_pb2.TensorShapeProto.Dim(size=-1 if d is None else int(d)) for d in dims)
    return meta_graph_pb2.TensorInfo(
        name=f"{spec.name}:0", dtype=tf.as_dtype(_tf_dtype(spec.dtype)).as_datatype_enum, tensor_shape=shape
    )


def _tf_dtype(dtype: str) -> str:
    return "string" if dtype == "string" else dtype


def signature_def_map(version: ServingVersion, address: Address) -> get_model_metadata_pb2.SignatureDefMap:
    """Every signature the address can run: its inputs, and its outputs under their served names."""
    result = get_model_metadata_pb2.SignatureDefMap()
    for name, signature in addressing.signatures_of(version, address).items():
        definition = meta_graph_pb2.SignatureDef(method_name=PREDICT_METHOD)
        for spec in signature.inputs:
            definition.inputs[spec.name].CopyFrom(_tensor_info(spec, signature.batched))
        for spec in addressing.output_specs(version, address, signature):
            definition.outputs[spec.name].CopyFrom(_tensor_info(spec, signature.batched))
        result.signature_def[name].CopyFrom(definition)
    return result


def model_status(
    address: Address, requested_version: str | int | None = None, label: str | None = None
) -> get_model_status_pb2.GetModelStatusResponse:
    """TF Serving's status of the app's versions that are loading, serving or failed (those its labels name
    included; ``label``: the version it names).

    Versions on disk that this server will not load are not listed (TF Serving
    lists only aspired versions). A failed load is ``END`` with the error.
    """
    registry = get_registry()
    util = registry.get(address.app)
    if label is not None:
        requested_version = registry.routes(address.app).of_label(label)
    status = util.status()
    if util.current is not None:
        addressing.model_indices(util.current, address)  # unknown model -> not found
    also = {version: other.state.value for version, other in registry.also(address.app).items()}
    rows = [(v["version"], also.get(v["version"], v["state"])) for v in status["versions"]]
    rows = [(version, state) for version, state in rows if state != "START"]
    if status["version"] and status["version"] not in [r[0] for r in rows]:
        rows.append((status["version"], "AVAILABLE"))
    response = get_model_status_pb2.GetModelStatusResponse()
    for version_id, state in rows:
        number = addressing.version_number(version_id)
        if requested_version not in (None, "") and str(requested_version) not in (version_id, str(number)):
            continue
        failed = state == "FAILED"
        response.model_version_status.add(
            version=number,
            state=STATES[state],
            status=status_pb2.StatusProto(
                error_code=error_codes_pb2.UNKNOWN if failed else error_codes_pb2.OK,
                error_message=(status["last_error"] or "") if failed else "",
            ),
        )
    if not response.model_version_status:
        which = f"version {requested_version}" if requested_version not in (None, "") else "any versions"
        raise VersionNotFound(f"Could not find {which} of model {address.name}")
    return response


def tensor_to_array(proto: tensor_pb2.TensorProto, *, max_bytes: int, max_strings: int) -> np.ndarray:
    """A request tensor as an array; DT_STRING elements as :class:`EncodedImage` bytes.

    The declared shape is checked against ``max_bytes`` (DT_STRING: its elements against ``max_strings``)
    before anything is allocated.
    """
    if proto.tensor_shape.unknown_rank or len(proto.tensor_shape.dim) > MAX_RANK:
        raise BadTensor(f"a tensor must have a known shape of at most {MAX_RANK} dimensions")
    shape = [d.size for d in proto.tensor_shape.dim]
    if any(d < 0 for d in shape):
        raise BadTensor(f"a tensor's shape {shape} has a negative dimension")
    elements = 1
    for dim in shape:
        elements *= dim
    try:
        dtype = tf.dtypes.as_dtype(proto.dtype)
    except TypeError:
        raise BadTensor(f"unsupported tensor dtype {proto.dtype}") from None
    if proto.dtype == types_pb2.DT_STRING:
        if max(elements, len(proto.string_val)) > max_strings:
            raise PayloadTooLarge(
                f"a DT_STRING tensor of {max(elements, len(proto.string_val))} elements; the limit is {max_strings}"
            )
        values = list(proto.string_val)
        if len(values) != elements:
            raise BadTensor(f"a DT_STRING tensor of shape {shape} needs {elements} values, got {len(values)}")
        array = np.empty(elements, dtype=object)
        array[:] = [EncodedImage(v) for v in values]
        return array.reshape(shape)
    if dtype.name not in DTYPES:
        raise BadTensor(f"unsupported tensor dtype {dtype.name} (supported: {', '.join(DTYPES)})")
    if elements * dtype.size > max_bytes:
        raise PayloadTooLarge(
            f"the tensor's shape {shape} holds {elements * dtype.size} bytes; the limit is {max_bytes}"
        )
    try:
        return tf.make_ndarray(proto)
    except (TypeError, ValueError):
        raise BadTensor(
            f"the input tensor of shape {shape} cannot be read: its content does not match its dtype and shape"
        ) from None


def array_to_tensor(value: np.ndarray) -> tensor_pb2.TensorProto:
    """An output as a TensorProto (its own dtype; strings as DT_STRING)."""
    return tf.make_tensor_proto(value)
