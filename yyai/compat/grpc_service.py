"""TF Serving's gRPC API: ``PredictionService`` (Predict, GetModelMetadata) and ``ModelService`` (GetModelStatus).

Built from the protos of ``tensorflow-serving-api``, so a TF Serving client
(``prediction_service_pb2_grpc.PredictionServiceStub``) works unchanged. Each
call is a codec over :mod:`yyai.services.dataplane` (same registry, same
batcher, same version rules as HTTP): several named inputs and outputs of any
dtype, ``signature_name`` and ``output_filter``; errors are gRPC status codes
derived from the canonical HTTP status of the error.

Beside them: the standard ``grpc.health.v1.Health`` (service ``""`` is the
server, SERVING when /readyz would answer 200; each app by its name; both TF
Serving services as the server), open to probes without a token, and server
reflection (``grpcurl``), behind the same access rule as predicts. With
``YYAI_TRACES`` on, a Predict is a server span continuing the ``traceparent`` of
its metadata (:mod:`yyai.tracing`).
"""

from __future__ import annotations

import logging
from concurrent import futures
from contextlib import contextmanager
from typing import Iterator

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2,
    prediction_service_pb2_grpc,
)

from yyai import services, tracing
from yyai.compat import protos
from yyai.conf import yyai_settings
from yyai.fleet.process_registry import get_registry
from yyai.http_errors import INTERNAL_ERROR, failure_of
from yyai.runtime.errors import BadTensor
from yyai.services import addressing, dataplane
from yyai.services.addressing import request_headers

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
SERVICES = (  # their descriptors loaded: reflection describes them (the _grpc modules do not import them)
    prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"].full_name,
    model_service_pb2.DESCRIPTOR.services_by_name["ModelService"].full_name,
)
HEALTH_METHODS = "/grpc.health.v1.Health/"  # a probe carries no token
PREDICT_SPAN = {"rpc.system": "grpc", "rpc.service": SERVICES[0], "rpc.method": "Predict"}


@contextmanager
def _aborting(context: grpc.ServicerContext) -> Iterator[None]:
    """Turn a known failure into the gRPC status of its HTTP status, anything else into INTERNAL without its words
    (logged with its trace). ``context.abort`` raises."""
    try:
        yield
    except Exception as exc:
        failure = failure_of(exc)
        if failure is None:
            log.exception("gRPC call failed")
            context.abort(grpc.StatusCode.INTERNAL, INTERNAL_ERROR)
        context.abort(GRPC_BY_HTTP.get(failure.status, grpc.StatusCode.INVALID_ARGUMENT), failure.message)


def _code(context: grpc.ServicerContext) -> int:
    """The numeric status code a call aborted with (2, UNKNOWN, when it did not say)."""
    code = context.code() if hasattr(context, "code") else None
    return code.value[0] if isinstance(code, grpc.StatusCode) else 2


def _version(spec) -> tuple[int | None, str | None]:
    """The version a ModelSpec names: (its number, None), (None, its label) or (None, None)."""
    if spec.HasField("version"):
        return spec.version.value, None
    return None, spec.version_label or None


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata; Classify, Regress and MultiInference answer UNIMPLEMENTED."""

    def Predict(self, request: predict_pb2.PredictRequest, context) -> predict_pb2.PredictResponse:
        if not tracing.ON:
            return self._predict(request, context)
        with tracing.server(f"{SERVICES[0]}/Predict", dict(context.invocation_metadata()), PREDICT_SPAN) as span:
            try:
                response = self._predict(request, context, span)
            except BaseException:
                span.set_attribute("rpc.grpc.status_code", _code(context))
                raise
            span.set_attribute("rpc.grpc.status_code", 0)
            return response

    def _predict(self, request: predict_pb2.PredictRequest, context, span=None) -> predict_pb2.PredictResponse:
        with _aborting(context):
            spec = request.model_spec
            if not request.inputs:
                raise BadTensor("the request has no inputs")
            inputs = {
                name: protos.tensor_to_array(
                    tensor, max_bytes=yyai_settings.MAX_BODY_BYTES, max_strings=yyai_settings.MAX_STRING_ELEMENTS
                )
                for name, tensor in request.inputs.items()
            }
            version, label = _version(spec)
            token = request_headers.set(dict(context.invocation_metadata()))  # a canary's sticky header
            try:
                result = services.infer(
                    services.InferRequest(
                        address=spec.name,
                        inputs=inputs,
                        version=version,
                        label=label,
                        signature=spec.signature_name or None,
                        outputs=tuple(request.output_filter) or None,
                    )
                )
            finally:
                request_headers.reset(token)
            if span is not None:
                span.set_attributes(tracing.tags(result.version))
            response = predict_pb2.PredictResponse()
            response.model_spec.CopyFrom(protos.model_spec(result.version, result.address, result.signature.name))
            for name, array in result.tensors().items():
                response.outputs[name].CopyFrom(protos.array_to_tensor(array))
            return response

    def GetModelMetadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, context
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        with _aborting(context):
            fields = list(request.metadata_field)
            if set(fields) != {SIGNATURE_DEF}:
                raise BadTensor(f"metadata_field must be ['{SIGNATURE_DEF}'] (the only metadata), got {fields}")
            address = services.parse_address(request.model_spec.name)
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            version, label = _version(request.model_spec)
            with addressing.serving(address, version, label=label) as serving:
                response.model_spec.CopyFrom(protos.model_spec(serving, address))
                response.metadata[SIGNATURE_DEF].Pack(protos.signature_def_map(serving, address))
            return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus; HandleReloadConfigRequest answers UNIMPLEMENTED (reload over HTTP instead)."""

    def GetModelStatus(
        self, request: get_model_status_pb2.GetModelStatusRequest, context
    ) -> get_model_status_pb2.GetModelStatusResponse:
        with _aborting(context):
            version, label = _version(request.model_spec)
            return protos.model_status(services.parse_address(request.model_spec.name), version, label)


class Access(grpc.ServerInterceptor):
    """Who may call: ``YYAI_PREDICT_PERMISSION``, with the REST API's tokens.

    ``any``: everyone. ``authenticated`` / ``staff``: the call carries metadata
    ``authorization: Token <key>`` (or ``Bearer <key>``) of a user (staff) of
    this server; else UNAUTHENTICATED or PERMISSION_DENIED.
    """

    def __init__(self, rule: str):
        self.rule = rule

    def intercept_service(self, continuation, handler_call_details):
        if self.rule == "any" or handler_call_details.method.startswith(HEALTH_METHODS):
            return continuation(handler_call_details)
        metadata = dict(handler_call_details.invocation_metadata or ())
        user = user_of(metadata.get("authorization", ""))
        if user is None:
            return _refusal(
                grpc.StatusCode.UNAUTHENTICATED,
                "this server needs a token: metadata 'authorization: Token <key>' (POST /api/token/)",
            )
        if self.rule == "staff" and not user.is_staff:
            return _refusal(grpc.StatusCode.PERMISSION_DENIED, "predicting on this server needs a staff user")
        return continuation(handler_call_details)


class Health(health.HealthServicer):
    """``grpc.health.v1.Health`` from the registry: each call first brings every status up to date (a Watch
    sees the changes its own start and every Check find)."""

    def __init__(self):
        super().__init__()
        self._known: set[str] = set()

    def Check(self, request, context):
        self.refresh()
        return super().Check(request, context)

    def Watch(self, request, context, send_response_callback=None):
        self.refresh()
        return super().Watch(request, context, send_response_callback)

    def refresh(self) -> None:
        """The server (and TF Serving's services) SERVING when /readyz would be 200; each app by its state."""
        serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
        overall = serving if dataplane.server_ready() else not_serving
        for service in ("", *SERVICES):
            self.set(service, overall)
        states = {util.name: util.state for util in get_registry().all()}
        for name, state in states.items():
            self.set(name, serving if state.serves else not_serving)
        for gone in self._known - set(states):
            self.set(gone, health_pb2.HealthCheckResponse.SERVICE_UNKNOWN)
        self._known = set(states)


def user_of(authorization: str):
    """The active user of a ``Token <key>`` / ``Bearer <key>`` header value, or None."""
    from django.db import close_old_connections
    from rest_framework.authtoken.models import Token

    scheme, _, key = authorization.partition(" ")
    if scheme.lower() not in ("token", "bearer") or not key.strip():
        return None
    try:
        token = Token.objects.select_related("user").filter(key=key.strip()).first()
    finally:
        close_old_connections()
    return token.user if token is not None and token.user.is_active else None


def _refusal(code: grpc.StatusCode, message: str):
    def refuse(request, context):
        context.abort(code, message)

    return grpc.unary_unary_rpc_method_handler(refuse)


def build_server(
    address: str,
    *,
    workers: int = 8,
    max_message_bytes: int = 64 * 1024**2,
    permission: str = "any",
    tls: tuple[bytes, bytes] | None = None,
) -> tuple[grpc.Server, int]:
    """A gRPC server with TF Serving's services, health and reflection bound to ``address`` (``host:0`` picks a
    free port); not started.

    ``permission`` is who may call (:class:`Access`); ``tls`` is (certificate chain, private key), PEM.
    Messages larger than ``max_message_bytes`` are refused by gRPC itself. Returns the server and its port.
    """
    tracing.configure()  # YYAI_TRACES: a Predict continues the trace of its metadata's traceparent
    options = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grpc"),
        options=options,
        interceptors=[Access(permission)],
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(), server)
    health_pb2_grpc.add_HealthServicer_to_server(Health(), server)
    health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
    reflection.enable_server_reflection((*SERVICES, health_name, reflection.SERVICE_NAME), server)
    if tls is not None:
        certificate, key = tls
        port = server.add_secure_port(address, grpc.ssl_server_credentials([(key, certificate)]))
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind the gRPC server to {address}")
    return server, port
