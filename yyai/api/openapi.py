"""OpenAPI description of the canonical API (drf-spectacular): every input form, every error.

The views carry these as decorators (``@openapi.APP_DOCS``, ``@openapi.RELOAD_EVENT_DOCS``);
the bodies' serializers (:mod:`.openapi_bodies`) describe wire shapes only and never validate a request.
Each operation lists the stable error ``code`` slugs a caller can meet,
grouped under their HTTP status (from :data:`yyai.http_errors.STATUS_BY_CODE`
plus the codes the API layer raises itself).
"""

from __future__ import annotations

from drf_spectacular.authentication import BasicScheme
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import serializers

from yyai.api.openapi_bodies import (
    PREDICT_EXAMPLES,
    PREDICT_JSON,
    PREDICT_OK,
    ImagePathSerializer,
    ImageUploadSerializer,
    PredictionSerializer,
    ReloadResultSerializer,
    RoutesResultSerializer,
    UploadResultSerializer,
)
from yyai.api.serializers import (
    AppSerializer,
    ReloadEventSerializer,
    UploadSerializer,
)
from yyai.http_errors import STATUS_BY_CODE


class LockoutBasicScheme(BasicScheme):
    """HTTP basic authentication in the schema: DRF's, answering 429 to locked-out logins."""

    target_class = "yyai.api.authentication.BasicAuthentication"


# Codes raised by the API layer (yyai.api.inputs, DRF) rather than by the runtime.
API_CODES = {
    "malformed_body": 400,
    "invalid": 400,
    "bad_request": 400,
    "not_authenticated": 401,
    "authentication_failed": 401,
    "permission_denied": 403,
    "image_path_disabled": 403,
    "path_outside_root": 403,
    "not_found": 404,
    "no_sample": 404,
    "path_not_found": 404,
    "unsupported_media_type": 415,
    "throttled": 429,
}
CODES = {**STATUS_BY_CODE, **API_CODES}
AUTH = ("not_authenticated", "authentication_failed", "permission_denied")
STATUS_TEXT = {
    400: "Bad input",
    401: "Not authenticated",
    403: "Not allowed",
    404: "Not found",
    409: "A reload of this app is already running (with wait=false), or a newer one replaced it",
    413: "Too large",
    415: "Not an image, or an unsupported content type",
    422: "The version on disk cannot be loaded",
    429: "Throttled (a YYAI_THROTTLE_* rate is set); retry after Retry-After seconds",
    503: "Overloaded or no version loaded yet; retry after Retry-After seconds",
}


class ErrorSerializer(serializers.Serializer):
    """Every error: words a caller can act on, and a stable slug to branch on."""

    error = serializers.CharField(help_text="What was wrong, in words a caller can act on.")
    code = serializers.CharField(help_text="Stable slug, e.g. not_an_image.")
    fields = serializers.DictField(required=False, help_text="Per-field messages, for invalid bodies.")


def errors(*codes: str) -> dict[int, OpenApiResponse]:
    """OpenAPI error responses for ``codes``, one per status, each listing its codes."""
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(CODES[code], []).append(code)
    return {
        status: OpenApiResponse(
            ErrorSerializer, description=f"{STATUS_TEXT[status]}. Codes: " + ", ".join(sorted(found))
        )
        for status, found in sorted(by_status.items())
    }


IMAGE_ERRORS = ("bad_input", "bad_base64", "payload_too_large", "image_too_large", "not_an_image")
SERVING_ERRORS = ("app_not_found", "app_not_available", "overloaded")


APP_DOCS = extend_schema_view(
    list=extend_schema(
        summary="List the model apps",
        responses={200: AppSerializer(many=True), **errors("invalid", "not_found")},
        description="Every app with its state, serving version and models, in this process.",
    ),
    retrieve=extend_schema(
        summary="One model app",
        responses={200: AppSerializer, **errors("app_not_found")},
        description="The app with its versions on disk and its last error.",
    ),
    predict=[
        extend_schema(
            methods=["GET"],
            summary="Predict on the app's sample image",
            request=None,
            description="Runs every model of the app on `model_store/<app>/sample.*`.",
            responses={
                200: PredictionSerializer,
                **errors(*AUTH, *IMAGE_ERRORS, *SERVING_ERRORS, "no_sample", "throttled"),
            },
        ),
        extend_schema(
            methods=["POST"],
            summary="Predict",
            examples=PREDICT_EXAMPLES,
            parameters=[
                OpenApiParameter("version", str, description="The version to run (number or id): one it serves."),
                OpenApiParameter("label", str, description="The version a label names (docs/protocols.md)."),
            ],
            description="Runs every model of the app on one input, all on one version. Send exactly one of: "
            "multipart file `img` or `image`; JSON `image` (base64) or `images` (list of base64); "
            "JSON or form `imgPath` (only under YYAI_IMAGE_ROOT); JSON `instances` (rows of ready "
            "tensors); JSON `inputs` (named tensors, columnar). The image forms feed the app's image "
            "input; a model's other inputs then come in `inputs` (in a form: a field holding JSON). "
            "With `images`, `instances` or `inputs` alone the answer has `predictions`, one result list "
            "per row. A model with several outputs answers `outputs`, by name.",
            request={
                "multipart/form-data": ImageUploadSerializer,
                "application/json": PREDICT_JSON,
                "application/x-www-form-urlencoded": ImagePathSerializer,
            },
            responses={
                200: PREDICT_OK,
                **errors(
                    *AUTH,
                    *IMAGE_ERRORS,
                    *SERVING_ERRORS,
                    "malformed_body",
                    "unsupported_media_type",
                    "bad_tensor_shape",
                    "image_path_disabled",
                    "path_outside_root",
                    "path_not_found",
                    "throttled",
                ),
            },
        ),
    ],
    reload=extend_schema(
        summary="Reload the app from disk (staff)",
        description="Loads and warms the version up (a flat layout frozen into a snapshot first), swaps it in, "
        "makes it the version every process serves, and answers once every live process serves it "
        "(200), or after YYAI_RELOAD_WAIT_SECONDS with the processes that lag or failed (202). The "
        "old version keeps serving if anything fails. `version` pins a number or a snapshot id, "
        '`"latest"` unpins.',
        responses={
            200: ReloadResultSerializer,
            202: OpenApiResponse(
                ReloadResultSerializer,
                description="Not every live process serves the "
                "new version yet (or some failed to load it): see lagging.",
            ),
            **errors(
                *AUTH,
                "invalid",
                "malformed_body",
                "app_not_found",
                "version_not_found",
                "reload_in_progress",
                "reload_superseded",
                "model_load_failed",
                "invalid_manifest",
                "throttled",
            ),
        },
    ),
    labels=extend_schema(
        summary="Label versions and set the canary share (staff)",
        description="Every labelled version is loaded here first (nothing changes if one cannot serve), then in "
        "every process; answers once every live process serves them (200), else 202 with the laggards. A request "
        "naming no version goes to the version labelled canary for canary_percent of the requests (sticky by "
        "canary_header when the request has it).",
        responses={
            200: RoutesResultSerializer,
            202: RoutesResultSerializer,
            **errors(*AUTH, "invalid", "bad_input", "app_not_found", "version_not_found", "model_load_failed"),
        },
    ),
    promote=extend_schema(
        summary="Promote the canary (staff)",
        request=None,
        description="The canary's version becomes the target everywhere (pinned, as a reload does); the canary "
        "label goes (stable names the version if that label is in use) and the share is 0.",
        responses={
            200: RoutesResultSerializer,
            202: RoutesResultSerializer,
            **errors(*AUTH, "bad_input", "app_not_found", "model_load_failed"),
        },
    ),
    rollback=extend_schema(
        summary="Roll the canary back (staff)",
        request=None,
        description="The canary label goes and every request goes to the target again.",
        responses={
            200: RoutesResultSerializer,
            202: RoutesResultSerializer,
            **errors(*AUTH, "bad_input", "app_not_found"),
        },
    ),
    versions=extend_schema(
        summary="Upload a new version (staff)",
        request={"multipart/form-data": UploadSerializer},
        responses={
            201: UploadResultSerializer,
            **errors(
                *AUTH,
                "invalid",
                "invalid_upload",
                "malformed_body",
                "payload_too_large",
                "app_not_found",
                "reload_in_progress",
                "model_load_failed",
                "invalid_manifest",
                "throttled",
            ),
        },
    ),
)

RELOAD_EVENT_DOCS = extend_schema_view(
    list=extend_schema(
        summary="Reload history (staff)",
        responses={200: ReloadEventSerializer(many=True), **errors("invalid", "not_found", *AUTH)},
    ),
    retrieve=extend_schema(
        summary="One reload event (staff)", responses={200: ReloadEventSerializer, **errors(*AUTH, "not_found")}
    ),
)


def only_canonical_api(endpoints: list[tuple], **kwargs) -> list[tuple]:
    """PREPROCESSING_HOOKS: describe ``/api/`` only; the seed and compat routes follow their own specs."""
    return [endpoint for endpoint in endpoints if endpoint[0].startswith("/api/")]


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text='Send as "Authorization: Token <token>".')


TOKEN_DOCS = extend_schema(
    summary="Get an API token",
    responses={200: TokenSerializer, **errors("invalid", "malformed_body", "unsupported_media_type", "throttled")},
)
