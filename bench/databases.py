"""Where a benchmark runs: a fresh SQLite file under a home directory, or a named PostgreSQL database."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

PROTECTED_DATABASES = {"postgres", "template0", "template1", "test"}


def prepare_database(url: str | None, home: Path) -> None:
    """Point truepipe at a fresh SQLite file under `home`, or at the PostgreSQL database of `url`
    (created if missing; a protected name is refused). Call before django.setup()."""
    os.environ["TRUEPIPE_HOME"] = str(home)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "truepipe.settings")
    if not url:
        os.environ.pop("TRUEPIPE_DATABASE_URL", None)
        return
    name = urlsplit(url).path.lstrip("/")
    if not name or name in PROTECTED_DATABASES:
        raise SystemExit(f"Refusing to use the database {name!r}: name a database for the benchmark.")
    import psycopg

    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    os.environ["TRUEPIPE_DATABASE_URL"] = url
