"""``manage.py predict <app> <image> [<image> ...]``: run an app on image files, print the API's JSON."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from yyai import services
from yyai.fleet.process_registry import get_registry
from yyai.lifecycle.startup import start as start_up
from yyai.runtime.errors import ServingError


class Command(BaseCommand):
    help = (
        "Load one app in this process and run every model on the images; prints the same JSON as "
        "POST /api/apps/<app>/predict/ (several images: 'predictions', one result list per image)."
    )

    def add_arguments(self, parser):
        parser.add_argument("app", help="model app name (a folder of the model store)")
        parser.add_argument("images", nargs="+", type=Path, help="image file(s): JPEG, PNG, BMP or WebP")

    def handle(self, *args, app: str, images: list[Path], **options):
        try:
            data = [path.read_bytes() for path in images]
        except OSError as exc:
            raise CommandError(f"cannot read {exc.filename}: {exc.strerror}") from exc
        try:
            start_up(serving_process=False)  # the version every serving process serves
            get_registry().get(app)
            result = services.predict(app=app, images=data)
        except ServingError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        self.stdout.write(json.dumps(result.to_body(many=len(images) > 1), indent=2))
