"""Create the ``admin`` superuser on first run: password from DJANGO_SUPERUSER_PASSWORD, or generated into a file.

The password is checked by Django's password validators. A generated one is
written to ``<YYAI_DATA_DIR>/admin-password`` (mode 0600), never to the output:
a container's or a service manager's output is a collected log.
"""

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

PASSWORD_FILE = "admin-password"


class Command(BaseCommand):
    help = (
        "Create the 'admin' superuser if no superuser exists (password: DJANGO_SUPERUSER_PASSWORD, checked by "
        "the password validators, or generated into <YYAI_DATA_DIR>/admin-password)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username: str = "admin", **options):
        users = get_user_model()
        if users.objects.filter(is_superuser=True).exists():
            self.stdout.write("a superuser exists already; nothing to do")
            return
        given = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        password = given or secrets.token_urlsafe(18)
        try:
            validate_password(password, users(username=username))
        except ValidationError as exc:
            raise CommandError("DJANGO_SUPERUSER_PASSWORD is refused: " + " ".join(exc.messages)) from None
        users.objects.create_superuser(username=username, email="", password=password)
        if given:
            self.stdout.write(self.style.SUCCESS(f"created superuser '{username}' with DJANGO_SUPERUSER_PASSWORD"))
            return
        path = Path(settings.DATA_DIR) / PASSWORD_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
        self.stdout.write(
            self.style.WARNING(
                f"created superuser '{username}'; its generated password is in {path} (readable by this user only). "
                "Set DJANGO_SUPERUSER_PASSWORD to choose it, or run manage.py changepassword."
            )
        )
