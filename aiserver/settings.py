"""Django settings: every value comes from the environment, with safe defaults.

The production environment is documented in the README (``DJANGO_DEBUG=0``,
a real ``DJANGO_SECRET_KEY``, ``DJANGO_ALLOWED_HOSTS``, ``DATABASE_URL``).
"""
from __future__ import annotations

import secrets
from pathlib import Path

import dj_database_url

from .env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

# Everything the server writes (SQLite file, generated secret key) lives here; created on start.
DATA_DIR = Path(env_str("YYAI_DATA_DIR", str(BASE_DIR / "data"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """DJANGO_SECRET_KEY, else a random key kept in the data folder (stable across restarts)."""
    key = env_str("DJANGO_SECRET_KEY")
    if key:
        return key
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "corsheaders",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI assets served locally, no CDN
    "yyai",
]

MIDDLEWARE = [
    "yyai.request_context.RequestContextMiddleware",  # first: request id, metrics, access log for every response
    "django.middleware.security.SecurityMiddleware",
    "yyai.middleware.BodySizeLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "aiserver.urls"
WSGI_APPLICATION = "aiserver.wsgi.application"
ASGI_APPLICATION = "aiserver.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'aiserver.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Several gunicorn workers share the file: wait for locks instead of failing at once.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Throttle counters live in the cache: per process by default, shared by every
# worker and host when REDIS_URL is set.
_REDIS_URL = env_str("REDIS_URL")
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _REDIS_URL}
          if _REDIS_URL else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Cross-origin browser calls: none unless listed (e.g. "https://app.example.com").
CORS_ALLOWED_ORIGINS = env_list("DJANGO_CORS_ALLOWED_ORIGINS", [])
CORS_ALLOW_CREDENTIALS = env_bool("DJANGO_CORS_ALLOW_CREDENTIALS", False)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True  # serve app static files without a collectstatic step

# -- limits (bytes, pixels, rows) ---------------------------------------------
YYAI_MAX_BODY_BYTES = env_int("YYAI_MAX_BODY_BYTES", 20 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = YYAI_MAX_BODY_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = YYAI_MAX_BODY_BYTES
YYAI_MAX_IMAGE_BYTES = env_int("YYAI_MAX_IMAGE_BYTES", 10 * 1024 * 1024, minimum=1024)
YYAI_MAX_IMAGE_PIXELS = env_int("YYAI_MAX_IMAGE_PIXELS", 40_000_000, minimum=1)
YYAI_MAX_BATCH = env_int("YYAI_MAX_BATCH", 64, minimum=1)
YYAI_MAX_UPLOAD_BYTES = env_int("YYAI_MAX_UPLOAD_BYTES", 1024**3, minimum=1024)  # POST .../versions/ only
# Uploaded versions are loaded first in a child process with these limits (0: in-process, tests only).
YYAI_VALIDATE_ISOLATED = env_bool("YYAI_VALIDATE_ISOLATED", True)
YYAI_VALIDATE_TIMEOUT_SECONDS = env_float("YYAI_VALIDATE_TIMEOUT_SECONDS", 300.0)
YYAI_VALIDATE_MEMORY_BYTES = env_int("YYAI_VALIDATE_MEMORY_BYTES", 4 * 1024**3, minimum=1024**3)

# -- model serving -------------------------------------------------------------
YYAI_MODEL_STORE = Path(env_str("YYAI_MODEL_STORE", str(BASE_DIR / "model_store"))).resolve()
_image_root = env_str("YYAI_IMAGE_ROOT")
YYAI_IMAGE_ROOT = Path(_image_root).resolve() if _image_root else None  # None: imgPath is refused
YYAI_SETTLE_SECONDS = env_float("YYAI_SETTLE_SECONDS", 5.0)
YYAI_MAX_MODEL_FILE_BYTES = env_int("YYAI_MAX_MODEL_FILE_BYTES", 2 * 1024**3, minimum=1)
YYAI_LOAD_WORKERS = env_int("YYAI_LOAD_WORKERS", 2, minimum=1)
# Every process re-reads app generations this often and reloads what rose (0: off).
YYAI_SYNC_SECONDS = env_float("YYAI_SYNC_SECONDS", 1.0)
# Scan the model store for new version folders this often (0: off, the default).
YYAI_POLL_SECONDS = env_float("YYAI_POLL_SECONDS", 0.0)
YYAI_MAX_BATCH_SIZE = env_int("YYAI_MAX_BATCH_SIZE", 32, minimum=1)
# 0 = greedy: never hold a request; batches still form from what queues while the model runs.
YYAI_BATCH_TIMEOUT_MICROS = env_int("YYAI_BATCH_TIMEOUT_MICROS", 0)
YYAI_MAX_ENQUEUED = env_int("YYAI_MAX_ENQUEUED", 256, minimum=1)
# Who may predict: "any" (default), "authenticated" or "staff".
YYAI_PREDICT_PERMISSION = env_str("YYAI_PREDICT_PERMISSION", "any")
if YYAI_PREDICT_PERMISSION not in ("any", "authenticated", "staff"):
    raise ValueError("YYAI_PREDICT_PERMISSION must be any, authenticated or staff")
# Predict requests answered on the event loop without Django's request cycle (yyai/fastpath.py);
# 0 sends every request through Django and DRF.
YYAI_FAST_PREDICT = env_bool("YYAI_FAST_PREDICT", True)

REST_FRAMEWORK = {
    # Token first: its WWW-Authenticate header makes anonymous calls 401 without a browser login pop-up.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.BasicAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "EXCEPTION_HANDLER": "yyai.api.exceptions.exception_handler",
    # Scoped throttles ("100/second", "30/minute"; unset = unlimited), per user or client IP.
    "DEFAULT_THROTTLE_RATES": {
        "predict": env_str("YYAI_THROTTLE_PREDICT") or None,
        "reload": env_str("YYAI_THROTTLE_RELOAD", "60/minute") or None,
        "upload": env_str("YYAI_THROTTLE_UPLOAD", "20/minute") or None,
        "token": env_str("YYAI_THROTTLE_TOKEN", "20/minute") or None,
    },
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
}

# -- production hardening ------------------------------------------------------
# With DEBUG off, HTTPS is assumed (secure cookies, redirect, HSTS) so that
# `manage.py check --deploy` is clean. DJANGO_HTTPS=0 serves plain HTTP on a
# trusted network or behind a proxy that terminates nothing (`make run` sets it).
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
_HTTPS = not DEBUG and env_bool("DJANGO_HTTPS", True)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = _HTTPS
SECURE_SSL_REDIRECT = _HTTPS and env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]  # load balancer and Prometheus probes
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31_536_000) if _HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_PRELOAD = _HTTPS
if env_bool("DJANGO_BEHIND_TLS_PROXY"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("YYAI_LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"level": "ERROR"}},
}
# YYAI_LOG_JSON=1: every log line is one JSON object, and each request logs one line (yyai.access).
YYAI_LOG_JSON = env_bool("YYAI_LOG_JSON", False)
if YYAI_LOG_JSON:
    LOGGING["formatters"]["json"] = {"()": "yyai.logging_json.JsonFormatter"}
    LOGGING["handlers"]["console"]["formatter"] = "json"

SPECTACULAR_SETTINGS = {
    "TITLE": "aiserver",
    "DESCRIPTION": "Keras model apps over HTTP: list apps, predict on images or tensors, reload from disk. "
                   'Every error is JSON: {"error": "<what was wrong>", "code": "<stable_slug>"}.',
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "PREPROCESSING_HOOKS": ["yyai.api.openapi.only_canonical_api"],
}
