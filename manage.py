#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aiserver.settings")
    from django.core.management import execute_from_command_line

    from aiserver import bootstrap

    bootstrap.prepare()  # the data folder and the secret key, before settings are read
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
