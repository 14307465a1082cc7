"""Routes of the web page. Included at the root before the seed's ``/<app>/`` routes."""
from django.urls import path, re_path

from yyai.web import views

urlpatterns = [
    path("", views.index, name="web-index"),
    re_path(r"^samples/(?P<app>[A-Za-z][A-Za-z0-9_-]{0,63})$", views.sample, name="web-sample"),
]
