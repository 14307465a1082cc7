"""Wire shapes of the predict, reload and upload bodies, for the OpenAPI description (:mod:`.openapi`): they
describe, they never validate a request."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, PolymorphicProxySerializer
from rest_framework import serializers

from yyai.api.serializers import ModelSerializer, ProcessSerializer

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


class RoutesResultSerializer(serializers.Serializer):
    app = serializers.CharField()
    labels = serializers.DictField(child=serializers.CharField(), help_text="label -> version.")
    canary_percent = serializers.IntegerField()
    canary_header = serializers.CharField(allow_null=True)
    target_version = serializers.CharField(help_text="The version requests naming none get (but the canary share).")
    generation = serializers.IntegerField()
    converged = serializers.BooleanField(help_text="Every live process serves the target and every labelled version.")
    processes = ProcessSerializer(many=True)
    lagging = ProcessSerializer(many=True, required=False, help_text="With 202: the processes that lag.")


class UploadResultSerializer(serializers.Serializer):
    app = serializers.CharField()
    version = serializers.CharField(help_text="The new version number.")
    models = serializers.ListField(child=serializers.DictField())
    activated = serializers.BooleanField()
    serving = serializers.CharField(allow_null=True, help_text="The version now serving, when activated.")
