"""The `truepipe` console command: Django's management commands, with truepipe's settings."""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "truepipe.settings")
    from django.core.management import execute_from_command_line

    args = list(sys.argv if argv is None else ["truepipe", *argv])
    args[0] = "truepipe"
    execute_from_command_line(args)


if __name__ == "__main__":
    main()
