"""Canonical API routes under /api/."""
from django.urls import include, path
from rest_framework import routers

from yyai.api import views

router = routers.DefaultRouter()
router.register("apps", views.AppViewSet, basename="app")
router.register("reloads", views.ReloadEventViewSet, basename="reloadevent")
router.register("users", views.UserViewSet)
router.register("groups", views.GroupViewSet)

urlpatterns = [
    path("token/", views.TokenView.as_view(), name="api-token"),
    path("", include(router.urls)),
]
