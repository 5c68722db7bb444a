"""`truepipe worker [-w N]`: run the background worker (nightly snapshot and evaluation)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser


def describe_queue() -> str:
    queue = settings.TRUEPIPE_TASK_QUEUE
    config = settings.HUEY
    if queue == "immediate":
        return "immediate (tasks run inline; no worker needed)"
    if queue == "sqlite":
        return f"SQLite file {config['filename']} (name {config['name']!r})"
    parts = urlsplit(queue)
    where = parts.hostname or parts.path
    if parts.port:
        where += f":{parts.port}"
    url = f"{parts.scheme}://{where}{parts.path if parts.hostname else ''}"  # never print a password
    return f"Redis {url} (name {config['name']!r})"


class Command(BaseCommand):
    help = (
        "Run the background worker: the nightly snapshot and evaluation at TRUEPIPE_NIGHTLY_AT, "
        "and queued tasks. Queue: TRUEPIPE_TASK_QUEUE (sqlite, the default, or a redis:// URL)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("-w", "--workers", type=int, default=2, help="Worker threads (default 2).")
        parser.add_argument(
            "--no-periodic", action="store_true", help="Run queued tasks only, not the nightly job."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["workers"] < 1:
            raise CommandError("--workers must be at least 1.")
        if settings.TRUEPIPE_TASK_QUEUE == "immediate":
            self.stdout.write("TRUEPIPE_TASK_QUEUE=immediate: tasks run inline, there is nothing to consume.")
            return
        self.stdout.write(
            f"truepipe worker: queue {describe_queue()}, {options['workers']} thread(s), "
            f"nightly job at {settings.TRUEPIPE_NIGHTLY_AT} ({settings.TIME_ZONE})"
            + (" disabled" if options["no_periodic"] else "")
            + ". Ctrl-C stops."
        )
        self.stdout.flush()
        logging.getLogger("huey").propagate = False  # huey logs once, not again through the root logger
        extra = {"periodic": False} if options["no_periodic"] else {}
        call_command("run_huey", workers=options["workers"], worker_type="thread", **extra)
