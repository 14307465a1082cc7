"""API views: parse the request, call one service or selector, respond. Nothing else."""
from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group, User
from rest_framework import permissions, viewsets
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle

from yyai import selectors, services
from yyai.api import openapi
from yyai.api.filters import ModelAppFilter, ReloadEventFilter
from yyai.api.inputs import PredictInput, read_predict_input, sample_image
from yyai.api.permissions import CanPredict
from yyai.api.serializers import (
    AppSerializer,
    GroupSerializer,
    ReloadEventSerializer,
    ReloadRequestSerializer,
    UploadSerializer,
    UserSerializer,
)
from yyai.models import ModelApp
from yyai.serving import get_registry


THROTTLE_SCOPES = {"predict": "predict", "reload": "reload", "versions": "upload"}


@openapi.APP_DOCS
class AppViewSet(viewsets.GenericViewSet):
    """Model apps: list and detail for anyone, predict per setting, reload for staff."""

    lookup_field = "name"
    lookup_url_kwarg = "app"
    lookup_value_regex = r"[A-Za-z][A-Za-z0-9_-]{0,63}"
    serializer_class = AppSerializer
    filterset_class = ModelAppFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no disk scan, no database
            return ModelApp.objects.none()
        return selectors.app_queryset()

    def get_throttles(self):
        self.throttle_scope = THROTTLE_SCOPES.get(self.action)
        return [ScopedRateThrottle()] if self.throttle_scope else []

    def get_permissions(self):
        if self.action == "predict":
            return [CanPredict()]
        if self.action in ("reload", "versions"):
            return [permissions.IsAdminUser()]
        return [permissions.AllowAny()]

    def list(self, request: Request) -> Response:
        apps = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(apps)
        data = self.get_serializer([selectors.app_status(app=a) for a in page], many=True).data
        return self.get_paginated_response(data)

    def retrieve(self, request: Request, app: str) -> Response:
        get_registry().get(app)  # AppNotFound (404) before any database access
        return Response(self.get_serializer(selectors.app_status(app=self.get_object())).data)

    def perform_authentication(self, request: Request) -> None:
        """Authenticate lazily for predict when anyone may predict (DRF's eager lookup costs ~0.2 ms)."""
        if self.action == "predict" and settings.YYAI_PREDICT_PERMISSION == "any":
            return  # request.user is still resolved on first use (e.g. by a throttle)
        super().perform_authentication(request)

    @action(detail=True, methods=["get", "post"])
    def predict(self, request: Request, app: str) -> Response:
        """POST: run every model of the app on the input. GET: on the app's sample image."""
        util = get_registry().get(app)  # 404 before reading the body
        if request.method == "GET":
            parsed = PredictInput(images=[sample_image(util.app_dir)])
        else:
            parsed = read_predict_input(request)
        result = services.predict(app=app, images=parsed.images, instances=parsed.instances,
                                  max_pixels=settings.YYAI_MAX_IMAGE_PIXELS, max_batch=settings.YYAI_MAX_BATCH)
        return Response(predict_body(result, many=parsed.many))

    @action(detail=True, methods=["post"], serializer_class=ReloadRequestSerializer)
    def reload(self, request: Request, app: str) -> Response:
        """Reload the app from disk; answers after the swap. Body: ``{"version": N | "latest", "wait": bool}``."""
        params = ReloadRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        report = services.reload_app(app=app, version=params.validated_data.get("version"), user=request.user,
                                     wait=params.validated_data["wait"])
        return Response({
            "app": report.app,
            "old_version": report.old_version,
            "new_version": report.new_version,
            "load_ms": round(report.load_seconds * 1000, 1),
            "models": report.models,
        })

    @action(detail=True, methods=["post"], serializer_class=UploadSerializer, parser_classes=[MultiPartParser])
    def versions(self, request: Request, app: str) -> Response:
        """Upload a new numbered version (staff); validated before it can serve. 201 with its number."""
        params = UploadSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        manifest = params.validated_data.get("manifest")
        result = services.upload_version(
            app=app, files=[(f.name, f) for f in params.validated_data["files"]],
            manifest=manifest.read() if manifest else None, activate=params.validated_data["activate"],
            user=request.user)
        return Response({
            "app": result.app,
            "version": str(result.version),
            "models": result.models,
            "activated": result.reload is not None,
            "serving": result.reload.new_version if result.reload else None,
        }, status=201)


def predict_body(result: services.PredictionResult, *, many: bool) -> dict:
    """The predict answer (DESIGN section 5): ``predictions`` per input for batch inputs, else ``result``."""
    body = {"app": result.app, "version": result.version, "demo": result.demo}
    if many:
        body["predictions"] = result.rows
    else:
        body["result"] = result.rows[0]
    body["elapsed_ms"] = result.elapsed_ms
    return body


@openapi.RELOAD_EVENT_DOCS
class ReloadEventViewSet(viewsets.ReadOnlyModelViewSet):
    """Reload history, newest first (staff)."""

    serializer_class = ReloadEventSerializer
    filterset_class = ReloadEventFilter

    def get_queryset(self):
        return selectors.reload_event_list()


class UserViewSet(viewsets.ModelViewSet):
    """Users (staff), as in the seed."""

    queryset = User.objects.all().order_by("-date_joined")
    serializer_class = UserSerializer


class GroupViewSet(viewsets.ModelViewSet):
    """Groups (staff), as in the seed."""

    queryset = Group.objects.all().order_by("name")
    serializer_class = GroupSerializer


@openapi.TOKEN_DOCS
class TokenView(ObtainAuthToken):
    """POST username and password, get the user's API token; throttled against guessing."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "token"
