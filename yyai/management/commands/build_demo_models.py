"""Build the demo apps' weights and sample images into the model store (idempotent)."""

from django.core.management.base import BaseCommand

from yyai.conf import yyai_settings


class Command(BaseCommand):
    help = "Build the demo apps (digits, facescore, predictsex) into YYAI_MODEL_STORE; skips what exists."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="rebuild even if the files exist")

    def handle(self, *args, force: bool = False, **options):
        from yyai.demo_models import build_demo_models

        if str(yyai_settings.MODEL_STORE).startswith("s3://"):
            self.stdout.write(
                f"the model store is {yyai_settings.MODEL_STORE}: demo apps are built only into a local "
                f"one (YYAI_MODEL_STORE=model_store manage.py build_demo_models, then copy it into the "
                f"bucket: aws s3 cp --recursive model_store {yyai_settings.MODEL_STORE})"
            )
            return
        done = build_demo_models(yyai_settings.MODEL_STORE, force=force, log=self.stdout.write)
        for app, what in done.items():
            self.stdout.write(self.style.SUCCESS(f"{app}: {what}"))
