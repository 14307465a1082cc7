"""App config. Under ``runserver`` the models load in the background at start-up."""

import sys
import threading

from django.apps import AppConfig


class YyaiConfig(AppConfig):
    name = "yyai"
    verbose_name = "Model serving"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        import os

        from yyai import auth, conf  # noqa: F401 - auth connects the failed-login counters
        from yyai.fleet import process_registry

        conf.connect()  # yyai_settings follows settings.YYAI when a test changes it
        process_registry.install_app_caller(_call_app)  # context.predict of every app's handler

        if sys.argv[1:2] == ["runserver"] and (os.environ.get("RUN_MAIN") == "true" or "--noreload" in sys.argv):
            from yyai.lifecycle import startup

            threading.Thread(target=startup.start, name="model-load", daemon=True).start()


def _call_app(app: str, **inputs) -> dict:
    """A handler's ``context.predict``: the data plane (imported on first use: TensorFlow is heavy for ``migrate``)."""
    from yyai.services.predictions import call_app

    return call_app(app, **inputs)
