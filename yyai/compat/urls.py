"""Routes of the foreign inference protocols: TF Serving REST (``/v1/``) and KServe v2 (``/v2/``)."""

from django.urls import include, path

urlpatterns = [
    path("", include("yyai.compat.tfserving")),
    path("", include("yyai.compat.kserve")),
]
