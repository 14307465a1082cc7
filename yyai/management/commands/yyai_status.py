"""``manage.py yyai_status``: a table of apps, versions, models, states and load times."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from django.core.management.base import BaseCommand, CommandError

from yyai.lifecycle import startup
from yyai.templatetags.yyai_tags import tensor

COLUMNS = ("APP", "STATE", "VERSION", "MODEL", "INPUTS", "OUTPUTS", "PARAMS", "LOAD MS")


class Command(BaseCommand):
    help = (
        "Show every model app: state, serving version, models, load + warm-up times. By default the "
        "store is loaded in this process (progress goes to stderr); --url asks a running server instead."
    )

    def add_arguments(self, parser):
        parser.add_argument("--url", help="base URL of a running server, e.g. http://127.0.0.1:8000")

    def handle(self, *args, url: str | None = None, **options):
        apps = fetch_apps(url) if url else [util.status() for util in startup.start(serving_process=False).all()]
        self.stdout.write(render_table(apps))


def fetch_apps(base_url: str) -> list[dict]:
    """Every app from ``GET <base_url>/api/apps/``, following pagination."""
    apps: list[dict] = []
    url: str | None = base_url.rstrip("/") + "/api/apps/"
    while url:
        try:
            with urllib.request.urlopen(
                urllib.request.Request(url, headers={"Accept": "application/json"}), timeout=30
            ) as response:
                page = json.load(response)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise CommandError(f"cannot read {url}: {exc}") from exc
        apps.extend(page["results"])
        url = page.get("next")
    return apps


def render_table(apps: list[dict]) -> str:
    """One row per model (one per app without models), columns aligned; errors under their app."""
    rows: list[tuple[str, ...]] = []
    notes: dict[int, str] = {}
    for app in apps:
        head = (app["name"], app["state"], app["version"] or "-")
        for model in app["models"] or [None]:
            if model is None:
                rows.append((*head, "-", "-", "-", "-", "-"))
            else:
                rows.append(
                    (
                        *head,
                        model["name"],
                        ", ".join(map(tensor, model["inputs"])),
                        ", ".join(map(tensor, model["outputs"])),
                        f"{model['params']:,}",
                        f"{model['load_ms'] + model['warmup_ms']:.0f}",
                    )
                )
        if app.get("last_error"):
            notes[len(rows) - 1] = f"  last error: {app['last_error']}"
    if not rows:
        return "no model apps in the store"
    widths = [max(len(row[i]) for row in (COLUMNS, *rows)) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(COLUMNS, widths)).rstrip()]
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if index in notes:
            lines.append(notes[index])
    return "\n".join(lines)
