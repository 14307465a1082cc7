"""OpenAPI description of the canonical API (drf-spectacular): every input form, every error.

The views carry these as decorators (``@openapi.APP_DOCS``, ``@openapi.RELOAD_EVENT_DOCS``);
the serializers below describe wire shapes only and never validate a request.
Each operation lists the stable error ``code`` slugs a caller can meet,
grouped under their HTTP status (from :data:`yyai.http_errors.STATUS_BY_CODE`
plus the codes the API layer raises itself).
"""

from __future__ import annotations

from drf_spectacular.authentication import BasicScheme
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_view,
)
from rest_framework import serializers

from yyai.api.serializers import (
    AppSerializer,
    ModelSerializer,
    ProcessSerializer,
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


# -- predict --------------------------------------------------------------------
OTHER_INPUTS = (
    "The model's other inputs, by name, one entry per image (a model with an image and a "
    'metadata vector: {"meta": [[0.1, 0.2]]}).'
)


class ImageUploadSerializer(serializers.Serializer):
    img = serializers.ImageField(required=False, help_text="The image (the seed's field name).")
    image = serializers.ImageField(required=False, help_text="The image. Send exactly one of img, image, imgPath.")
    imgPath = serializers.CharField(
        required=False, help_text="Path of an image under YYAI_IMAGE_ROOT (off unless set)."
    )
    inputs = serializers.CharField(required=False, help_text=f"JSON text. {OTHER_INPUTS}")


class ImageJsonSerializer(serializers.Serializer):
    image = serializers.CharField(
        help_text="One image (JPEG, PNG, BMP, WebP), base64-encoded, for the app's image "
        "input (its only input, or the one [input] name names)."
    )
    inputs = serializers.JSONField(required=False, help_text=OTHER_INPUTS)


class ImagesJsonSerializer(serializers.Serializer):
    images = serializers.ListField(
        child=serializers.CharField(),
        help_text="Several base64 images, one batch; "
        "the answer has one result list per image (limit YYAI_MAX_ROWS_PER_REQUEST).",
    )
    inputs = serializers.JSONField(required=False, help_text=OTHER_INPUTS)


class ImagePathSerializer(serializers.Serializer):
    imgPath = serializers.CharField(help_text="Path of an image under YYAI_IMAGE_ROOT (refused when it is unset).")
    inputs = serializers.JSONField(required=False, help_text=OTHER_INPUTS)


class InstancesJsonSerializer(serializers.Serializer):
    instances = serializers.ListField(
        child=serializers.JSONField(),
        help_text="Rows of ready tensors: per row, the "
        "value of the only input, or an object naming every input. No image decoding.",
    )


class InputsJsonSerializer(serializers.Serializer):
    inputs = serializers.JSONField(
        help_text='Named tensors, columnar: {"<input>": <nested list>, ...}, the batch '
        "dimension included where the model has one (TF Serving's columnar "
        "format). A one-input model also takes the bare tensor."
    )


class ModelResultSerializer(serializers.Serializer):
    """One model's answer for one input."""

    name = serializers.CharField(help_text="Model file name.")
    value = serializers.JSONField(
        required=False,
        help_text="A model with one output. Regression: the number (or list). Classification: the probabilities.",
    )
    label = serializers.CharField(required=False, help_text="Classification only: the winning label.")
    score = serializers.FloatField(required=False, help_text="Classification only: the winner's probability.")
    outputs = serializers.DictField(
        child=serializers.JSONField(),
        required=False,
        help_text="A model with several outputs: each output's value, by name.",
    )


class PredictionSerializer(serializers.Serializer):
    app = serializers.CharField()
    version = serializers.CharField(help_text="The version every model of the answer ran on.")
    demo = serializers.BooleanField(help_text="True: the weights are placeholders.")
    result = ModelResultSerializer(many=True, help_text="One entry per model, in file-name order.")
    elapsed_ms = serializers.FloatField()


class BatchPredictionSerializer(serializers.Serializer):
    app = serializers.CharField()
    version = serializers.CharField()
    demo = serializers.BooleanField()
    predictions = serializers.ListField(child=ModelResultSerializer(many=True), help_text="Per input, per model.")
    elapsed_ms = serializers.FloatField()


PREDICT_JSON = PolymorphicProxySerializer(
    component_name="PredictJson",
    resource_type_field_name=None,
    serializers=[
        ImageJsonSerializer,
        ImagesJsonSerializer,
        ImagePathSerializer,
        InstancesJsonSerializer,
        InputsJsonSerializer,
    ],
)
PREDICT_OK = PolymorphicProxySerializer(
    component_name="PredictResponse",
    resource_type_field_name=None,
    serializers=[PredictionSerializer, BatchPredictionSerializer],
)
PREDICT_EXAMPLES = [
    OpenApiExample("one image (base64)", value={"image": "iVBORw0KGgo..."}, request_only=True),
    OpenApiExample("a batch of images", value={"images": ["iVBORw0KGgo...", "/9j/4AAQ..."]}, request_only=True),
    OpenApiExample("server-side path", value={"imgPath": "faces/001.jpg"}, request_only=True),
    OpenApiExample("ready tensors", value={"instances": [[[[0.0], [0.5]], [[1.0], [0.25]]]]}, request_only=True),
    OpenApiExample(
        "an image and a metadata vector",
        request_only=True,
        value={"image": "iVBORw0KGgo...", "inputs": {"meta": [[0.3, 1.0]]}},
    ),
    OpenApiExample(
        "named tensors, columnar",
        request_only=True,
        value={"inputs": {"image": [[[[0.0], [0.5]], [[1.0], [0.25]]]], "meta": [[0.3, 1.0]]}},
    ),
    OpenApiExample(
        "answer",
        response_only=True,
        value={
            "app": "facescore",
            "version": "3",
            "demo": False,
            "elapsed_ms": 4.1,
            "result": [
                {"name": "resnet_a.h5", "value": 3.27},
                {"name": "cnn_b.h5", "value": [0.12, 0.88], "label": "male", "score": 0.88},
                {"name": "heads.keras", "outputs": {"age": 31.2, "sex": [0.1, 0.9]}},
            ],
        },
    ),
]


# -- reload and upload ------------------------------------------------------------
class ReloadResultSerializer(serializers.Serializer):
    app = serializers.CharField()
    old_version = serializers.CharField(allow_null=True, help_text="null on the first load.")
    new_version = serializers.CharField(help_text="A version number, or a flat layout's snapshot id.")
    generation = serializers.IntegerField(help_text="The app's generation once this version is its target.")
    load_ms = serializers.FloatField(help_text="Load, compile and warm-up of the whole version.")
    models = ModelSerializer(many=True)
    converged = serializers.BooleanField(help_text="Every live process serves new_version (200); false: 202.")
    processes = ProcessSerializer(many=True, help_text="The live serving processes when the reload answered.")
    lagging = ProcessSerializer(
        many=True, required=False, help_text="With 202: the processes that lag or failed, with their errors."
    )


class UploadResultSerializer(serializers.Serializer):
    app = serializers.CharField()
    version = serializers.CharField(help_text="The new version number.")
    models = serializers.ListField(child=serializers.DictField())
    activated = serializers.BooleanField()
    serving = serializers.CharField(allow_null=True, help_text="The version now serving, when activated.")


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
