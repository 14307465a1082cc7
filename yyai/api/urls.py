"""Canonical API routes under /api/."""
from django.urls import include, path
from rest_framework import routers

from yyai.api import views


# No ".json" suffix routes: the views take no ``format`` argument; Accept or ?format= choose the renderer.
class Router(routers.DefaultRouter):
    include_format_suffixes = False


router = Router()
router.register("apps", views.AppViewSet, basename="app")
router.register("reloads", views.ReloadEventViewSet, basename="reloadevent")
router.register("users", views.UserViewSet)
router.register("groups", views.GroupViewSet)

urlpatterns = [
    path("token/", views.TokenView.as_view(), name="api-token"),
    path("", include(router.urls)),
]
