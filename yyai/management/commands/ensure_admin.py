"""Create the ``admin`` superuser on first run (password from DJANGO_SUPERUSER_PASSWORD or generated)."""
import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the 'admin' superuser if no superuser exists; prints a generated password once."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username: str = "admin", **options):
        users = get_user_model()
        if users.objects.filter(is_superuser=True).exists():
            self.stdout.write("a superuser exists already; nothing to do")
            return
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD") or secrets.token_urlsafe(12)
        users.objects.create_superuser(username=username, email="", password=password)
        if "DJANGO_SUPERUSER_PASSWORD" in os.environ:
            self.stdout.write(self.style.SUCCESS(f"created superuser '{username}' with DJANGO_SUPERUSER_PASSWORD"))
        else:
            self.stdout.write(self.style.WARNING(
                f"created superuser '{username}' with password: {password}\n"
                "  (shown once; set DJANGO_SUPERUSER_PASSWORD to choose it, or run manage.py changepassword)"))
