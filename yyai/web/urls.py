"""Routes of the web page. Included at the root before the seed's ``/<app>/`` routes."""

from django.urls import path, re_path

from yyai.runtime.registry import APP_NAME_PATTERN
from yyai.web import views

urlpatterns = [
    path("", views.index, name="web-index"),
    re_path(rf"^samples/(?P<app>{APP_NAME_PATTERN})$", views.sample, name="web-sample"),
]
