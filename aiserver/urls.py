"""Root URLs: the API, the admin, health probes, then the seed's per-app routes last."""
from django.contrib import admin
from django.urls import include, path

from yyai import health

handler404 = "yyai.api.exceptions.not_found_view"
handler500 = "yyai.api.exceptions.server_error_view"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("yyai.api.urls")),
    path("api-auth/", include("rest_framework.urls")),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("", include("yyai.compat.seed")),
]
