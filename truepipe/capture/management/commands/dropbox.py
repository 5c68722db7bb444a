"""`truepipe dropbox [--bind HOST:PORT]`: run the SMTP drop-box that logs BCC'd and forwarded mail."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from truepipe.capture.dropbox import controller


def parse_bind(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise CommandError(f"--bind takes HOST:PORT, not {value!r}.")
    return host.strip("[]"), int(port)


class Command(BaseCommand):
    help = (
        "Run the drop-box: an SMTP server that logs mail BCC'd or forwarded to "
        "TRUEPIPE_DROPBOX_ADDRESS by a registered sender."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--bind",
            default=settings.TRUEPIPE_DROPBOX_BIND,
            help="HOST:PORT to listen on (default TRUEPIPE_DROPBOX_BIND, 127.0.0.1:2525).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        host, port = parse_bind(options["bind"])
        server = controller(host, port)
        try:
            server.start()
        except (OSError, RuntimeError) as exc:
            raise CommandError(f"Cannot listen on {host}:{port}: {exc}") from None
        self.stdout.write(
            f"Drop-box listening on {host}:{port} for {settings.TRUEPIPE_DROPBOX_ADDRESS} (Ctrl+C stops it)."
        )
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
            self.stdout.write("Drop-box stopped.")
