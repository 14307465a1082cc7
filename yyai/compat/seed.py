"""The seed's routes, unchanged for its clients: ``/<app>/`` predicts, ``/<app>_loadmodel/`` reloads.

Both are the canonical views under other URLs, so inputs, outputs, permissions
and errors are exactly those of ``/api/apps/<app>/predict/`` and ``.../reload/``.
``/<app>/predictor`` and ``/<app>/infer`` serve the other seeds' clients (see seed_clients).
"""

from django.urls import re_path

from yyai.api.views import AppViewSet
from yyai.compat import seed_clients
from yyai.runtime.registry import APP_NAME_PATTERN

APP = rf"(?P<app>{APP_NAME_PATTERN})"

urlpatterns = [
    # _loadmodel first: "predictsex_loadmodel" would also match the plain app pattern.
    # A reload changes what serves: POST only, so no link or crawler can trigger one (GET answers 405).
    re_path(
        rf"^{APP}_loadmodel/$", AppViewSet.as_view({"get": "reload_needs_post", "post": "reload"}), name="seed-reload"
    ),
    re_path(rf"^{APP}/$", AppViewSet.as_view({"get": "predict", "post": "predict"}), name="seed-predict"),
    re_path(rf"^{APP}/predictor/?$", seed_clients.PredictorView.as_view(), name="seed-predictor"),
    re_path(rf"^{APP}/infer/?$", seed_clients.InferView.as_view(), name="seed-infer"),
]
