"""Peer: the seed's design. A minimal Django view calling keras ``model.predict`` per request.

As the seed did: the models are loaded once at start, and every request runs
``model.predict`` on its own single image under one global lock (Keras models
were not safe to call from several threads). No batching.
Serve with ``gunicorn bench.peers.seed_django:application``; $BENCH_APP_DIR is the app.
"""

from __future__ import annotations

import json
import os
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import django  # noqa: E402
from django.conf import settings  # noqa: E402
from django.http import HttpRequest, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-seed-peer",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    DATA_UPLOAD_MAX_MEMORY_SIZE=20 * 1024 * 1024,
)
django.setup()

import keras  # noqa: E402
import numpy as np  # noqa: E402

from bench.peers import common  # noqa: E402

FOLDER = common.app_dir()
SPEC = common.spec_of(FOLDER)
FILES = common.model_files(FOLDER)
MODELS = [keras.models.load_model(f, compile=False) for f in FILES]
INPUT_SHAPE = tuple(MODELS[0].inputs[0].shape[1:])
OUTPUT_SHAPES = [tuple(m.outputs[0].shape[1:]) for m in MODELS]
LOCK = threading.Lock()


@csrf_exempt
def predict(request: HttpRequest, app: str) -> JsonResponse:
    if "img" in request.FILES:
        image = request.FILES["img"].read()
    else:
        image = common.image_from_json(json.loads(request.body))
    x = common.to_row(image, SPEC, INPUT_SHAPE)[np.newaxis]
    with LOCK:
        outputs = [model.predict(x, verbose=0) for model in MODELS]
    rows = common.results([f.name for f in FILES], outputs, SPEC, OUTPUT_SHAPES)
    return JsonResponse({"app": app, "result": rows[0]})


urlpatterns = [path("api/apps/<str:app>/predict/", predict)]

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
