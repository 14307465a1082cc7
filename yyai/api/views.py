"""API views: parse the request, call one service or selector, respond. Nothing else."""

from __future__ import annotations

from django.contrib.auth.models import Group, User
from rest_framework import permissions, viewsets
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle

from yyai import selectors, services
from yyai.api import openapi
from yyai.api.authentication import raise_if_locked_out
from yyai.api.filters import ModelAppFilter, ReloadEventFilter
from yyai.api.inputs import PredictInput, read_predict_input, sample_image
from yyai.api.parsers import BoundedJSONParser
from yyai.api.permissions import CanPredict, StaffReadsSuperuserWrites
from yyai.api.serializers import (
    AppSerializer,
    GroupSerializer,
    ReloadEventSerializer,
    ReloadRequestSerializer,
    RoutesRequestSerializer,
    UploadSerializer,
    UserSerializer,
)
from yyai.conf import yyai_settings
from yyai.fleet.process_registry import get_registry
from yyai.http_errors import ApiError
from yyai.models import ModelApp
from yyai.runtime.errors import ReloadSuperseded
from yyai.runtime.registry import APP_NAME_PATTERN

THROTTLE_SCOPES = {"predict": "predict", "reload": "reload", "versions": "upload"}
STAFF_ACTIONS = ("reload", "versions", "labels", "promote", "rollback")


@openapi.APP_DOCS
class AppViewSet(viewsets.GenericViewSet):
    """Model apps: list and detail for anyone, predict per setting, reload for staff."""

    lookup_field = "name"
    lookup_url_kwarg = "app"
    lookup_value_regex = APP_NAME_PATTERN
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
        if self.action in STAFF_ACTIONS:
            return [permissions.IsAdminUser()]
        return [permissions.AllowAny()]

    def list(self, request: Request) -> Response:
        apps = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(apps)
        staff = request.user.is_staff
        data = self.get_serializer([selectors.app_status(app=a, staff=staff) for a in page], many=True).data
        return self.get_paginated_response(data)

    def retrieve(self, request: Request, app: str) -> Response:
        get_registry().get(app)  # AppNotFound (404) before any database access
        return Response(
            self.get_serializer(selectors.app_status(app=self.get_object(), staff=request.user.is_staff)).data
        )

    def perform_authentication(self, request: Request) -> None:
        """Authenticate lazily for predict when anyone may predict (DRF's eager lookup costs ~0.2 ms)."""
        if self.action == "predict" and yyai_settings.PREDICT_PERMISSION == "any":
            return  # request.user is still resolved on first use (e.g. by a throttle)
        super().perform_authentication(request)

    @action(detail=True, methods=["get", "post"])
    def predict(self, request: Request, app: str) -> Response:
        """POST: run every model of the app on the input. GET (and HEAD, its headers): on the app's sample image."""
        util = get_registry().get(app)  # 404 before reading the body
        if request.method in ("GET", "HEAD"):
            parsed = PredictInput(images=[sample_image(util.app_dir)])
        else:
            parsed = read_predict_input(request)
        result = services.predict(
            app=app,
            images=parsed.images,
            instances=parsed.instances,
            inputs=parsed.inputs,
            version=request.query_params.get("version") or None,
            label=request.query_params.get("label") or None,
        )
        return Response(result.to_body(many=parsed.many))

    @action(detail=True, methods=["post"], serializer_class=RoutesRequestSerializer)
    def labels(self, request: Request, app: str) -> Response:
        """Label versions and set the canary share; answers once every process serves them (200), or with
        the processes that lag (202). Body: ``{"labels": {"canary": "4"}, "canary_percent": 10}``."""
        params = RoutesRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        get_registry().get(app)
        return Response(*routes_answer(services.set_routes(app=app, user=request.user, **params.validated_data)))

    @action(detail=True, methods=["post"], url_path="canary/promote")
    def promote(self, request: Request, app: str) -> Response:
        """The canary's version becomes the target everywhere (pinned); its label goes, the share is 0."""
        get_registry().get(app)
        reloaded, outcome = services.promote(app=app, user=request.user)
        return Response(*routes_answer(outcome))

    @action(detail=True, methods=["post"], url_path="canary/rollback")
    def rollback(self, request: Request, app: str) -> Response:
        """The canary ends: its label goes, every request goes to the target again."""
        get_registry().get(app)
        return Response(*routes_answer(services.roll_back(app=app, user=request.user)))

    @action(detail=True, methods=["post"], serializer_class=ReloadRequestSerializer)
    def reload(self, request: Request, app: str) -> Response:
        """Reload the app from disk; answers after the swap. Body: ``{"version": N | "latest", "wait": bool}``."""
        params = ReloadRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        outcome = services.reload_app(
            app=app, version=params.validated_data.get("version"), user=request.user, wait=params.validated_data["wait"]
        )
        return Response(*reload_answer(outcome))

    def reload_needs_post(self, request: Request, app: str) -> Response:
        """GET of the seed's ``/<app>_loadmodel/``: safe methods change nothing, so 405 with the way to do it."""
        raise ApiError(
            f"a reload changes what serves, so it takes POST: curl -X POST -u <staff user> "
            f"{request.build_absolute_uri()}",
            code="method_not_allowed",
            status=405,
        )

    @action(detail=True, methods=["post"], serializer_class=UploadSerializer, parser_classes=[MultiPartParser])
    def versions(self, request: Request, app: str) -> Response:
        """Upload a new numbered version (staff); validated before it can serve. 201 with its number."""
        params = UploadSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        manifest = params.validated_data.get("manifest")
        result = services.upload_version(
            app=app,
            files=[(f.name, f) for f in params.validated_data["files"]],
            manifest=manifest.read() if manifest else None,
            activate=params.validated_data["activate"],
            user=request.user,
        )
        body = {
            "app": result.app,
            "version": str(result.version),
            "models": result.models,
            "activated": result.reload is not None,
            "serving": result.reload.report.new_version if result.reload else None,
        }
        if result.reload is None:
            return Response(body, status=201)
        fleet, status = reload_answer(result.reload)
        return Response(
            {**body, "processes": fleet["processes"], "converged": fleet["converged"]},
            status=201 if status == 200 else status,
        )


def reload_answer(outcome: services.ReloadOutcome) -> tuple[dict, int]:
    """(body, status) of a reload: 200 once every live process serves the new version (or, for an app gone
    from the repository, none serves it any more), 202 while some lag or failed (listed with their errors);
    ReloadSuperseded when a newer reload replaced it meanwhile."""
    report, fleet = outcome.report, outcome.fleet
    if fleet is not None and fleet.superseded_by:
        raise ReloadSuperseded(
            f"a newer reload of app '{report.app}' (generation {fleet.superseded_by}) replaced "
            f"this one before every process served {report.new_version}"
        )
    body = {
        "app": report.app,
        "old_version": report.old_version,
        "new_version": report.new_version or None,
        "generation": outcome.generation,
        "load_ms": round(report.load_seconds * 1000, 1),
        "models": report.models,
        "converged": fleet is None or fleet.converged,
        "processes": fleet.processes if fleet is not None else [],
    }
    if outcome.removed:
        body.update(
            removed=True,
            message=f"app '{report.app}' is gone from the repository: it was removed from "
            f"every process, every list, the admin and the web page",
        )
    if fleet is not None and not fleet.converged:
        body["lagging"] = fleet.lagging
    return body, 200 if body["converged"] else 202


@openapi.RELOAD_EVENT_DOCS
class ReloadEventViewSet(viewsets.ReadOnlyModelViewSet):
    """Reload history, newest first (staff)."""

    serializer_class = ReloadEventSerializer
    filterset_class = ReloadEventFilter

    def get_queryset(self):
        return selectors.reload_event_list()


class UserViewSet(viewsets.ModelViewSet):
    """Users, as in the seed: staff read them, superusers change them."""

    queryset = User.objects.all().order_by("-date_joined")
    serializer_class = UserSerializer
    permission_classes = [StaffReadsSuperuserWrites]


class GroupViewSet(viewsets.ModelViewSet):
    """Groups, as in the seed: staff read them, superusers change them."""

    queryset = Group.objects.all().order_by("name")
    serializer_class = GroupSerializer
    permission_classes = [StaffReadsSuperuserWrites]


@openapi.TOKEN_DOCS
class TokenView(ObtainAuthToken):
    """POST username and password, get the user's API token; throttled against guessing, 429 when locked out."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "token"
    parser_classes = [BoundedJSONParser, FormParser, MultiPartParser]  # ObtainAuthToken's own: DRF's JSONParser

    def post(self, request: Request, *args, **kwargs) -> Response:
        try:
            return super().post(request, *args, **kwargs)
        except ValidationError:
            raise_if_locked_out(request)
            raise


def routes_answer(outcome) -> tuple[dict, int]:
    """(body, status) of a change of labels: 200 once every live process serves the target and every
    labelled version, else 202 with the processes that lag."""
    fleet = outcome.fleet
    body = {
        "app": outcome.app,
        **outcome.routes.describe(),
        "target_version": outcome.target,
        "generation": outcome.generation,
        "converged": fleet.converged,
        "processes": fleet.processes,
    }
    if not fleet.converged:
        body["lagging"] = fleet.lagging
    return body, 200 if fleet.converged else 202
