#!/usr/bin/env python
"""Django's command-line utility (development settings; test settings for ``manage.py test``)."""

import os
import sys


def main() -> None:
    # `manage.py test` runs on its own ports and data (project/settings/test.py).
    default = "test" if sys.argv[1:2] == ["test"] else "development"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", f"project.settings.{default}")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
