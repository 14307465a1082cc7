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

        if sys.argv[1:2] == ["runserver"] and (os.environ.get("RUN_MAIN") == "true" or "--noreload" in sys.argv):
            from yyai import serving

            threading.Thread(target=serving.start, name="model-load", daemon=True).start()
