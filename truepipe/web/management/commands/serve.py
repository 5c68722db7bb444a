"""`truepipe serve`: the production-style web server (gunicorn, threaded workers).

gunicorn is started in-process through its BaseApplication API rather than as a
separate `gunicorn` executable, so the installed `truepipe` console command is all
an operator needs. Static files are served by WhiteNoise (see settings).
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor

DEFAULT_BIND = "127.0.0.1:8000"


def parse_bind(value: str) -> tuple[str, int]:
    """'HOST:PORT' (IPv6 hosts in brackets) -> (host, port), with a message a user can act on."""
    host, sep, port_text = (value or "").strip().rpartition(":")
    if not sep or not host or not port_text:
        raise CommandError(f"--bind needs HOST:PORT, such as {DEFAULT_BIND} (got {value!r}).")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise CommandError(f"The port in --bind {value!r} must be a number from 1 to 65535.")
    return host.strip("[]"), int(port_text)


def check_port_free(host: str, port: int) -> None:
    """Fail early and clearly, instead of gunicorn retrying and exiting with a terse log line."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise CommandError(
            f"Cannot bind to {host!r}: {exc.strerror}. Use an address of this machine."
        ) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise CommandError(
                f"Cannot listen on {host}:{port}: {exc.strerror}. Stop the other server, "
                f"or pass another address, e.g. --bind {host}:{port + 1}."
            ) from None


def unapplied_migrations() -> int:
    connection = connections[DEFAULT_DB_ALIAS]
    executor = MigrationExecutor(connection)
    return len(executor.migration_plan(executor.loader.graph.leaf_nodes()))


def default_workers() -> int:
    # Threads carry the concurrency; a few processes keep one slow request from blocking the rest.
    return max(2, min(4, os.cpu_count() or 1))


def run_server(bind: str, workers: int, threads: int = 4, *, access_log: bool = True) -> None:
    """Run gunicorn in the foreground until it is stopped (Ctrl+C / SIGTERM)."""
    from gunicorn.app.base import BaseApplication

    options: dict[str, Any] = {
        "bind": bind,
        "workers": workers,
        "worker_class": "gthread",
        "threads": threads,
        "timeout": 60,
        "graceful_timeout": 10,
        "accesslog": "-" if access_log else None,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "truepipe",
        # gunicorn's control socket lives at one per-user path: two servers would fight over it.
        "control_socket_disable": True,
    }

    class TruepipeServer(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                if value is not None:
                    self.cfg.set(key, value)  # type: ignore[union-attr]

        def load(self):
            from truepipe.wsgi import application

            return application

    # Workers are forked from this process: they must not inherit its database connections.
    connections.close_all()
    TruepipeServer().run()


class Command(BaseCommand):
    help = "Serve truepipe with a production-style server (gunicorn, threaded workers, WhiteNoise)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--bind", default=DEFAULT_BIND, help=f"HOST:PORT to listen on (default {DEFAULT_BIND})."
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=None,
            help=f"Worker processes, each with 4 threads (default {default_workers()} on this machine).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        host, port = parse_bind(options["bind"])
        workers = default_workers() if options["workers"] is None else options["workers"]
        if not 1 <= workers <= 64:
            raise CommandError("--workers must be between 1 and 64.")
        pending = unapplied_migrations()
        if pending:
            self.stderr.write(
                self.style.WARNING(
                    f"The database has {pending} unapplied migration(s): run `truepipe migrate` first, "
                    "or pages will fail."
                )
            )
        check_port_free(host, port)
        # WhiteNoise warns on every worker start when STATIC_ROOT is missing (collectstatic not run).
        Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)
        bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.stdout.write(f"truepipe is serving on http://{bind}/ with {workers} worker(s). Ctrl+C stops it.")
        sys.stdout.flush()
        run_server(bind, workers)
