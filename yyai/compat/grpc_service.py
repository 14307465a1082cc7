"""TF Serving's gRPC API: ``PredictionService`` (Predict, GetModelMetadata) and ``ModelService`` (GetModelStatus).

Built from the protos of ``tensorflow-serving-api``, so a TF Serving client
(``prediction_service_pb2_grpc.PredictionServiceStub``) works unchanged. Each
call is a thin layer over :mod:`yyai.compat.servables` (same registry, same
batcher, same version rules as HTTP); errors are gRPC status codes derived from
the canonical HTTP status of the error.
"""
from __future__ import annotations

import logging
from concurrent import futures
from contextlib import contextmanager
from typing import Iterator

import grpc
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from yyai.api.exceptions import STATUS_BY_CODE
from yyai.compat import protos, servables
from yyai.compat.servables import SIGNATURE_NAME
from yyai.runtime.errors import BadTensor, ServingError, VersionNotFound

log = logging.getLogger(__name__)

GRPC_BY_HTTP = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ABORTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.FAILED_PRECONDITION,
    503: grpc.StatusCode.UNAVAILABLE,
}
SIGNATURE_DEF = "signature_def"


@contextmanager
def _aborting(context: grpc.ServicerContext) -> Iterator[None]:
    """Turn a ServingError into the matching gRPC status (context.abort raises)."""
    try:
        yield
    except ServingError as exc:
        status = STATUS_BY_CODE.get(exc.code, 400)
        context.abort(GRPC_BY_HTTP.get(status, grpc.StatusCode.INVALID_ARGUMENT), exc.message)


def _version(spec) -> int | None:
    if spec.HasField("version"):
        return spec.version.value
    if spec.version_label:
        raise VersionNotFound(f"version labels are not supported (got '{spec.version_label}'); "
                                        f"leave the version empty for the serving one")
    return None


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata; Classify, Regress and MultiInference answer UNIMPLEMENTED."""

    def Predict(self, request: predict_pb2.PredictRequest, context) -> predict_pb2.PredictResponse:
        with _aborting(context):
            spec = request.model_spec
            protos.check_signature(spec.signature_name)
            if len(request.inputs) != 1:
                raise BadTensor(f"the model takes one input ('{servables.INPUT_NAME}'); got {len(request.inputs)}")
            value = protos.tensor_to_array(next(iter(request.inputs.values())))
            target = servables.parse_name(spec.name)
            response = predict_pb2.PredictResponse()
            with servables.serving(target, _version(spec)) as serving:
                if isinstance(value, list):
                    batch = servables.image_batch(serving, value)
                else:
                    batch = servables.tensor_batch(serving, value)
                outputs = servables.run(serving, target, batch, list(request.output_filter) or None)
                response.model_spec.CopyFrom(protos.model_spec(serving, target, SIGNATURE_NAME))
            for name, array in outputs.items():
                response.outputs[name].CopyFrom(protos.array_to_tensor(array))
            return response

    def GetModelMetadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest,
                         context) -> get_model_metadata_pb2.GetModelMetadataResponse:
        with _aborting(context):
            fields = list(request.metadata_field)
            if set(fields) != {SIGNATURE_DEF}:
                raise BadTensor(f"metadata_field must be ['{SIGNATURE_DEF}'] (the only metadata), got {fields}")
            target = servables.parse_name(request.model_spec.name)
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            with servables.serving(target, _version(request.model_spec)) as serving:
                response.model_spec.CopyFrom(protos.model_spec(serving, target))
                response.metadata[SIGNATURE_DEF].Pack(protos.signature_def_map(serving, target))
            return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus; HandleReloadConfigRequest answers UNIMPLEMENTED (reload over HTTP instead)."""

    def GetModelStatus(self, request: get_model_status_pb2.GetModelStatusRequest,
                       context) -> get_model_status_pb2.GetModelStatusResponse:
        with _aborting(context):
            return protos.model_status(servables.parse_name(request.model_spec.name), _version(request.model_spec))


def build_server(address: str, *, workers: int = 8, max_message_bytes: int = 64 * 1024**2) -> tuple[grpc.Server, int]:
    """A gRPC server with both services bound to ``address`` (``host:0`` picks a free port); not started.

    Returns the server and the port it is bound to.
    """
    options = [("grpc.max_receive_message_length", max_message_bytes),
               ("grpc.max_send_message_length", max_message_bytes)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grpc"), options=options)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(), server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind the gRPC server to {address}")
    return server, port
