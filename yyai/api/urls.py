"""Canonical API routes under /api/."""

from django.urls import include, path
from rest_framework import permissions, routers

from yyai.api import views


class APIRoot(routers.APIRootView):
    """The API's endpoints. Anyone may read this page and the apps; the rest needs a staff login (the link at
    the top right of the browsable page)."""

    permission_classes = [permissions.AllowAny]


# No ".json" suffix routes: the views take no ``format`` argument; Accept or ?format= choose the renderer.
class Router(routers.DefaultRouter):
    include_format_suffixes = False
    APIRootView = APIRoot


router = Router()
router.register("apps", views.AppViewSet, basename="app")
router.register("reloads", views.ReloadEventViewSet, basename="reloadevent")
router.register("users", views.UserViewSet)
router.register("groups", views.GroupViewSet)

urlpatterns = [
    path("token/", views.TokenView.as_view(), name="api-token"),
    path("", include(router.urls)),
]
