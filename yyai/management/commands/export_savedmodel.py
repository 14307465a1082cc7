"""``python manage.py export_savedmodel <app> [--output DIR]``: the app in TF Serving's layout."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from yyai.conf import yyai_settings


class Command(BaseCommand):
    help = (
        "Write an app's serving version as a SavedModel in TF Serving's layout, <output>/<app>/<N>/, "
        "with one serving_default signature: input 'input', one output per model (its file stem)."
    )

    def add_arguments(self, parser):
        parser.add_argument("app", help="the model app to export")
        parser.add_argument(
            "--output",
            type=Path,
            default=None,
            help="base folder (default: <YYAI_DATA_DIR>/export); TF Serving's --model_base_path is <output>/<app>",
        )
        parser.add_argument(
            "--app-version",
            dest="app_version",
            default=None,
            help="the app version to export (default: the one its policy serves)",
        )
        parser.add_argument(
            "--number",
            type=int,
            default=None,
            help="version number to write (default: the version's number, 1 for the flat layout)",
        )
        parser.add_argument("--force", action="store_true", help="replace an existing export of that number")

    def handle(
        self, *args, app: str, output: Path | None, app_version: str | None, number: int | None, force: bool, **options
    ):
        from yyai.compat.export import export_app
        from yyai.fleet.process_registry import get_registry
        from yyai.runtime.errors import ServingError

        output = output or Path(settings.DATA_DIR) / "export"
        try:
            folder = export_app(
                get_registry().get(app).source,
                output,
                version=app_version,
                number=number,
                settle_seconds=yyai_settings.SETTLE_SECONDS,
                force=force,
            )
        except ServingError as exc:
            raise CommandError(exc.message) from exc
        except FileExistsError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"{app}: wrote {folder}"))
        self.stdout.write(
            f"serve it with: tensorflow_model_server --rest_api_port=8501 --model_name={app} "
            f"--model_base_path={folder.parent.resolve()}"
        )
