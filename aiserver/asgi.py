"""ASGI entry point. Call ``yyai.serving.start()`` from the ASGI server's worker start hook."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aiserver.settings")
application = get_asgi_application()
