"""Django settings: every value comes from the environment, with safe defaults.

The production environment is documented in the README (``DJANGO_DEBUG=0``,
a real ``DJANGO_SECRET_KEY``, ``DJANGO_ALLOWED_HOSTS``, ``DATABASE_URL``).
yyai's own settings are one dict, ``YYAI``, read from the ``YYAI_*`` variables
(``yyai/conf.py`` holds every default). Importing this module writes nothing:
the data folder and the secret key file are made by ``aiserver.bootstrap.prepare()``.
"""

from __future__ import annotations

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from yyai.conf import YyaiSettings, from_environment

from .bootstrap import SECRET_KEY_FILE, data_dir
from .devices import enable_memory_growth
from .env import env_bool, env_int, env_list, env_str
from .proxy import parse_networks

# Everything the server writes (SQLite file, generated secret key, static files) lives here.
DATA_DIR = data_dir()
YYAI = from_environment()  # yyai's settings: yyai.conf.yyai_settings reads them, over its defaults
_yyai = YyaiSettings(YYAI)  # what this module itself needs of them


def _secret_key() -> str:
    """DJANGO_SECRET_KEY, else the key ``aiserver.bootstrap.prepare()`` keeps in the data folder."""
    key = env_str("DJANGO_SECRET_KEY")
    if key:
        return key
    try:
        return (DATA_DIR / SECRET_KEY_FILE).read_text().strip()
    except FileNotFoundError:
        raise ImproperlyConfigured(
            f"no DJANGO_SECRET_KEY and no {DATA_DIR / SECRET_KEY_FILE}: start through "
            f"manage.py or gunicorn (they create it), or set DJANGO_SECRET_KEY"
        ) from None


SECRET_KEY = _secret_key()
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])
CSRF_FAILURE_VIEW = "yyai.api.exceptions.csrf_failure_view"  # JSON, like every error

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
    "yyai.http.request_context.RequestContextMiddleware",  # first: request id, metrics, access log for every response
    "django.middleware.security.SecurityMiddleware",
    "yyai.http.middleware.BodySizeLimitMiddleware",
    "yyai.http.middleware.DatabaseUnavailableMiddleware",
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
    # Several gunicorn workers share the file. WAL lets reads go on while one process writes; IMMEDIATE
    # transactions take the write lock when they begin, so they wait for it (up to the timeout) instead of
    # failing at once when two read-then-write transactions meet. Past the timeout a request that needs
    # the database answers 503 database_unavailable with Retry-After.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        timeout=env_int("DATABASE_SQLITE_TIMEOUT", 20),
        transaction_mode="IMMEDIATE",
        init_command="PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Throttle counters live in the cache: per process by default, shared by every
# worker and host when REDIS_URL is set.
_REDIS_URL = env_str("REDIS_URL")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _REDIS_URL}
    if _REDIS_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}

# Cross-origin browser calls: none unless listed (e.g. "https://app.example.com").
CORS_ALLOWED_ORIGINS = env_list("DJANGO_CORS_ALLOWED_ORIGINS", [])
CORS_ALLOW_CREDENTIALS = env_bool("DJANGO_CORS_ALLOW_CREDENTIALS", False)

# Failed logins are counted per username and per client address; past YYAI's LOGIN_* limits, every attempt is
# refused (yyai/auth.py).
AUTHENTICATION_BACKENDS = ["yyai.auth.LockoutBackend", "django.contrib.auth.backends.ModelBackend"]

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
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True  # serve app static files without a collectstatic step

# Django's own body limits follow yyai's (the ASGI front enforces them first).
DATA_UPLOAD_MAX_MEMORY_SIZE = FILE_UPLOAD_MAX_MEMORY_SIZE = _yyai.MAX_BODY_BYTES
# Every process (gunicorn workers, grpcserve, the upload validator) reads settings before TensorFlow touches
# a GPU: TF_FORCE_GPU_ALLOW_GROWTH=true unless set, so no process reserves a whole card (aiserver/devices.py).
enable_memory_growth()

REST_FRAMEWORK = {
    # Token first: its WWW-Authenticate header makes anonymous calls 401 without a browser login pop-up.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "yyai.api.authentication.BasicAuthentication",  # DRF's, answering 429 to locked-out logins
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PARSER_CLASSES": [
        "yyai.api.parsers.BoundedJSONParser",  # JSONParser, nesting depth bounded
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "EXCEPTION_HANDLER": "yyai.api.exceptions.exception_handler",
    # Throttles key on REMOTE_ADDR only: X-Forwarded-For is believed from YYAI_TRUSTED_PROXIES alone
    # (aiserver/proxy.py).
    "NUM_PROXIES": 0,
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
# X-Forwarded-Proto and X-Forwarded-For are believed only from these peers (CIDRs or addresses, e.g.
# "10.0.0.0/8" or the load balancer's address; default none) and stripped from every request
# (aiserver/proxy.py, the outermost ASGI app). Django reads the scheme and client address the proxy
# layer settled, so SECURE_PROXY_SSL_HEADER stays unset: it would believe the header from anyone.
TRUSTED_PROXY_NETWORKS = parse_networks(_yyai.TRUSTED_PROXIES)  # YYAI_TRUSTED_PROXIES; a bad entry fails here
if env_bool("DJANGO_BEHIND_TLS_PROXY"):
    raise ImproperlyConfigured(
        "DJANGO_BEHIND_TLS_PROXY is gone: it believed X-Forwarded-Proto from any client. Set "
        "YYAI_TRUSTED_PROXIES to the proxy's addresses or network instead (docs/deploy.md)."
    )

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"}},
    "filters": {"unavailable_is_a_warning": {"()": "yyai.logging_json.UnavailableIsAWarning"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("YYAI_LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"level": "ERROR", "filters": ["unavailable_is_a_warning"]}},
}
# YYAI_LOG_JSON=1: every log line is one JSON object, and each request logs one line (yyai.access).
if _yyai.LOG_JSON:
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
