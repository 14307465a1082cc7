"""The seed's routes, unchanged for its clients: ``/<app>/`` predicts, ``/<app>_loadmodel/`` reloads.

Both are the canonical views under other URLs, so inputs, outputs, permissions
and errors are exactly those of ``/api/apps/<app>/predict/`` and ``.../reload/``.
"""
from django.urls import re_path

from yyai.api.views import AppViewSet

APP = r"(?P<app>[A-Za-z][A-Za-z0-9_-]{0,63})"

urlpatterns = [
    # _loadmodel first: "predictsex_loadmodel" would also match the plain app pattern.
    re_path(rf"^{APP}_loadmodel/$", AppViewSet.as_view({"get": "reload", "post": "reload"}), name="seed-reload"),
    re_path(rf"^{APP}/$", AppViewSet.as_view({"get": "predict", "post": "predict"}), name="seed-predict"),
]
