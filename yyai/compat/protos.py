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

from yyai.compat import servables
from yyai.compat.servables import INPUT_NAME, SIGNATURE_NAME, Target
from yyai.runtime.errors import BadTensor, VersionNotFound
from yyai.runtime.servable import ServingVersion

PREDICT_METHOD = "tensorflow/serving/predict"
VersionStatus = get_model_status_pb2.ModelVersionStatus
STATES = {"START": VersionStatus.START, "LOADING": VersionStatus.LOADING, "AVAILABLE": VersionStatus.AVAILABLE,
          "UNLOADING": VersionStatus.UNLOADING, "END": VersionStatus.END, "FAILED": VersionStatus.END}


def to_json(message: Message) -> dict[str, Any]:
    """A message as TF Serving's REST API writes it: proto field names, defaults printed."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


def model_spec(version: ServingVersion, target: Target, signature_name: str = "") -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=target.name, signature_name=signature_name)
    spec.version.value = servables.version_number(version.id)
    return spec


def _tensor_info(name: str, shape: tuple[int, ...]) -> meta_graph_pb2.TensorInfo:
    dims = [tensor_shape_pb2.TensorShapeProto.Dim(size=-1)]
    dims += [tensor_shape_pb2.TensorShapeProto.Dim(size=int(d)) for d in shape]
    return meta_graph_pb2.TensorInfo(name=f"{name}:0", dtype=types_pb2.DT_FLOAT,
                                     tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=dims))


def signature_def_map(version: ServingVersion, target: Target) -> get_model_metadata_pb2.SignatureDefMap:
    """``serving_default``: one float input ``input`` [-1, *shape], one float output per addressed model."""
    signature = meta_graph_pb2.SignatureDef(method_name=PREDICT_METHOD)
    signature.inputs[INPUT_NAME].CopyFrom(_tensor_info(INPUT_NAME, version.input_shape))
    for name in servables.output_names(version, target):
        signature.outputs[name].CopyFrom(_tensor_info(name, servables.output_shape(version, name)))
    result = get_model_metadata_pb2.SignatureDefMap()
    result.signature_def[SIGNATURE_NAME].CopyFrom(signature)
    return result


def check_signature(signature_name: str) -> None:
    if signature_name not in ("", SIGNATURE_NAME):
        raise BadTensor(f"Serving signature name: \"{signature_name}\" not found in signature def; "
                        f"the only signature is \"{SIGNATURE_NAME}\"")


def model_status(target: Target,
                 requested_version: str | int | None = None) -> get_model_status_pb2.GetModelStatusResponse:
    """TF Serving's status of the app's versions that are loading, serving or failed.

    Versions on disk that this server will not load are not listed (TF Serving
    lists only aspired versions). A failed load is ``END`` with the error.
    """
    util = servables.get_util(target)
    status = util.status()
    if util.current is not None:
        servables.model_indices(util.current, target)  # unknown model -> not found
    rows = [(v["version"], v["state"]) for v in status["versions"] if v["state"] != "START"]
    if status["version"] and status["version"] not in [r[0] for r in rows]:
        rows.append((status["version"], "AVAILABLE"))
    response = get_model_status_pb2.GetModelStatusResponse()
    for version_id, state in rows:
        number = servables.version_number(version_id)
        if requested_version not in (None, "") and str(requested_version) not in (version_id, str(number)):
            continue
        failed = state == "FAILED"
        response.model_version_status.add(
            version=number, state=STATES[state],
            status=status_pb2.StatusProto(error_code=error_codes_pb2.UNKNOWN if failed else error_codes_pb2.OK,
                                          error_message=(status["last_error"] or "") if failed else ""))
    if not response.model_version_status:
        which = f"version {requested_version}" if requested_version not in (None, "") else "any versions"
        raise VersionNotFound(f"Could not find {which} of model {target.name}")
    return response


def tensor_to_array(proto: tensor_pb2.TensorProto) -> np.ndarray | list[bytes]:
    """A request tensor: numbers as an array, DT_STRING as a list of encoded images."""
    if proto.dtype == types_pb2.DT_STRING:
        return list(proto.string_val)
    try:
        return tf.make_ndarray(proto)
    except (TypeError, ValueError) as exc:
        raise BadTensor(f"the input tensor cannot be read: {exc}") from None


def array_to_tensor(array: np.ndarray) -> tensor_pb2.TensorProto:
    return tf.make_tensor_proto(np.asarray(array, dtype=np.float32))
