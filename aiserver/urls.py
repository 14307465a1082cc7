"""Root URLs: the API, the admin, health probes, then the seed's per-app routes last."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from yyai.http import health

handler400 = "yyai.api.exceptions.bad_request_view"
handler403 = "yyai.api.exceptions.permission_denied_view"
handler404 = "yyai.api.exceptions.not_found_view"
handler500 = "yyai.api.exceptions.server_error_view"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/", include("yyai.api.urls")),
    path("api-auth/", include("rest_framework.urls")),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics_view, name="metrics"),
    path("", include("yyai.web.urls")),  # the web page at /
    path("", include("yyai.compat.urls")),  # TF Serving REST (/v1/), KServe v2 (/v2/)
    path("", include("yyai.compat.seed")),
]
