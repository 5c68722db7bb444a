"""Django settings, built from TRUEPIPE_* environment variables.

Every variable is documented in docs/operations.md. Bad values raise
ImproperlyConfigured at start-up rather than failing later at run time.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent


def env(name: str, default: str = "") -> str:
    """Read NAME, or the contents of the file named by NAME_FILE (for secrets)."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_name!r} cannot be read: {exc}") from exc
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = env(name, "").strip().lower()
    if not value:
        return default
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def env_int(name: str, default: int) -> int:
    value = env(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from exc


def env_list(name: str, default: list[str]) -> list[str]:
    value = env(name, "").strip()
    return [item.strip() for item in value.split(",") if item.strip()] if value else default


def default_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "truepipe"


TRUEPIPE_HOME = Path(env("TRUEPIPE_HOME") or default_home())

DEBUG = env_bool("TRUEPIPE_DEBUG", False)
SECRET_KEY = env("TRUEPIPE_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG and env_bool("TRUEPIPE_PRODUCTION", False):
        raise ImproperlyConfigured("TRUEPIPE_SECRET_KEY must be set in production")
    # Development and demo only: a key that is stable per installation.
    SECRET_KEY = "insecure-dev-key-" + str(TRUEPIPE_HOME)

ALLOWED_HOSTS = env_list("TRUEPIPE_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("TRUEPIPE_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    # Only for its bundled Swagger UI templates and static files: /api/v1/docs works offline.
    "ninja",
    "truepipe.core",
    "truepipe.people",
    "truepipe.accounts",
    "truepipe.pipeline",
    "truepipe.activities",
    "truepipe.web",
    "truepipe.api",
    "truepipe.importer",
    "truepipe.demo",
    "truepipe.hygiene",
    "truepipe.audit",
    "truepipe.accountability",
    "truepipe.notify",
    "truepipe.oneline",
    "truepipe.capture",
    "truepipe.contracts",
    # Background work: the nightly snapshot and evaluation (`truepipe worker`).
    "huey.contrib.djhuey",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "truepipe.urls"
WSGI_APPLICATION = "truepipe.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "truepipe.notify.context.unread",
                "truepipe.web.context.navigation",
            ],
        },
    },
]


def database_config() -> dict[str, Any]:
    url = env("TRUEPIPE_DATABASE_URL")
    if not url:
        TRUEPIPE_HOME.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{TRUEPIPE_HOME / 'truepipe.sqlite3'}"
    try:
        config: dict[str, Any] = dj_database_url.parse(  # type: ignore[assignment]
            url, conn_max_age=env_int("TRUEPIPE_DB_CONN_MAX_AGE", 60)
        )
    except ValueError as exc:
        raise ImproperlyConfigured(f"TRUEPIPE_DATABASE_URL is not a database URL: {exc}") from exc
    if config["ENGINE"] == "django.db.backends.sqlite3":
        mmap_mb = env_int("TRUEPIPE_SQLITE_MMAP_MB", 65536)
        if mmap_mb < 0:
            raise ImproperlyConfigured("TRUEPIPE_SQLITE_MMAP_MB must be 0 (off) or more, not a negative size")
        # WAL lets readers run beside the single writer; IMMEDIATE takes the write lock
        # at BEGIN so two writers queue on busy_timeout instead of failing mid-transaction.
        config["OPTIONS"] = {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": (
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                "PRAGMA foreign_keys=ON; PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY; "
                # Pages read through a memory map of the file instead of a read() into SQLite's
                # own cache each: random look-ups (a deal by its id, a change by its deal) took
                # half the time. SQLite caps the size at its build's maximum (2 GiB for Python's);
                # the pages after that are read as before. 0 turns it off.
                f"PRAGMA mmap_size={mmap_mb * 1048576};"
            ),
        }
        config["CONN_MAX_AGE"] = 0 if config["NAME"] == ":memory:" else config["CONN_MAX_AGE"]
    config.setdefault("TEST", {})
    return config


DATABASES = {"default": database_config()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TRUEPIPE_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env("TRUEPIPE_STATIC_ROOT") or (TRUEPIPE_HOME / "static"))
# WhiteNoise scans STATIC_ROOT at start-up and warns when it is missing (before collectstatic).
with contextlib.suppress(OSError):  # a read-only install: WhiteNoise falls back to the finders
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Project-wide assets (htmx) live in truepipe/static, outside any app's static directory.
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve straight from the app directories when collectstatic has not been run (demo, tests).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "pipeline"
LOGOUT_REDIRECT_URL = "login"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool(
    "TRUEPIPE_SECURE_COOKIES", not DEBUG and env_bool("TRUEPIPE_PRODUCTION", False)
)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env_bool("TRUEPIPE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("TRUEPIPE_HSTS_SECONDS", 0)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("TRUEPIPE_BEHIND_PROXY", False) else None
)
X_FRAME_OPTIONS = "DENY"

# An index's included (non-key) columns are PostgreSQL's; SQLite's indexes carry the row id anyway.
SILENCED_SYSTEM_CHECKS = ["models.W040"]
if env_bool("TRUEPIPE_PRODUCTION", False):
    SILENCED_SYSTEM_CHECKS += [
        # HSTS and SSL redirect are the TLS-terminating proxy's job; both stay configurable above.
        "security.W004",
        "security.W008",
    ]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("TRUEPIPE_LOG_LEVEL", "WARNING")},
}

# Domain settings.
TRUEPIPE_DEFAULT_CURRENCY = env("TRUEPIPE_DEFAULT_CURRENCY", "USD")
TRUEPIPE_API_PAGE_SIZE_MAX = env_int("TRUEPIPE_API_PAGE_SIZE_MAX", 200)
# List counts are exact up to this many rows past the page asked for, then a lower bound.
TRUEPIPE_API_COUNT_MAX = env_int("TRUEPIPE_API_COUNT_MAX", 10_000)

# E-mail (notifications): SMTP when TRUEPIPE_SMTP_HOST is set, else files under TRUEPIPE_HOME/mail
# (the demo and a fresh install send nothing anywhere). See docs/operations.md "Notifications".
TRUEPIPE_SMTP_HOST = env("TRUEPIPE_SMTP_HOST", "")
if TRUEPIPE_SMTP_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = TRUEPIPE_SMTP_HOST
    EMAIL_PORT = env_int("TRUEPIPE_SMTP_PORT", 587)
    EMAIL_HOST_USER = env("TRUEPIPE_SMTP_USER", "")
    EMAIL_HOST_PASSWORD = env("TRUEPIPE_SMTP_PASSWORD", "")
    EMAIL_USE_TLS = env_bool("TRUEPIPE_SMTP_STARTTLS", EMAIL_PORT == 587)
    EMAIL_USE_SSL = env_bool("TRUEPIPE_SMTP_SSL", EMAIL_PORT == 465)
    EMAIL_TIMEOUT = env_int("TRUEPIPE_SMTP_TIMEOUT", 20)
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = str(TRUEPIPE_HOME / "mail")
DEFAULT_FROM_EMAIL = env("TRUEPIPE_FROM_EMAIL", "truepipe <truepipe@localhost>")
# Links in e-mails and webhook messages point here.
TRUEPIPE_BASE_URL = env("TRUEPIPE_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
# Outgoing webhooks: attempts before giving up, and the timeout of each.
TRUEPIPE_WEBHOOK_ATTEMPTS = env_int("TRUEPIPE_WEBHOOK_ATTEMPTS", 6)
TRUEPIPE_WEBHOOK_TIMEOUT = env_int("TRUEPIPE_WEBHOOK_TIMEOUT", 10)

# Capture (docs/capture.md): the company's own e-mail domains (mail among them only is not
# logged; users' addresses add theirs), the drop-box's address and where it listens, and the key
# that encrypts stored mailbox passwords (default: derived from TRUEPIPE_SECRET_KEY).
TRUEPIPE_INTERNAL_DOMAINS = env_list("TRUEPIPE_INTERNAL_DOMAINS", [])
TRUEPIPE_DROPBOX_ADDRESS = env("TRUEPIPE_DROPBOX_ADDRESS", "log@truepipe.localhost").strip().lower()
TRUEPIPE_DROPBOX_BIND = env("TRUEPIPE_DROPBOX_BIND", "127.0.0.1:2525").strip()
TRUEPIPE_CAPTURE_KEY = env("TRUEPIPE_CAPTURE_KEY", "")
# Largest message the drop-box accepts (bytes); attachments are never stored, only described.
TRUEPIPE_DROPBOX_MAX_SIZE = env_int("TRUEPIPE_DROPBOX_MAX_SIZE", 25 * 1024 * 1024)

# Background work (huey): TRUEPIPE_TASK_QUEUE is "sqlite" (a queue file under TRUEPIPE_HOME, no
# server), a redis:// URL, or "immediate" (tasks run inline: tests). See docs/operations.md "Workers".
TRUEPIPE_TASK_QUEUE = env("TRUEPIPE_TASK_QUEUE", "sqlite").strip() or "sqlite"
TRUEPIPE_NIGHTLY_AT = env("TRUEPIPE_NIGHTLY_AT", "01:30").strip()
try:
    _hour, _minute = (int(part) for part in TRUEPIPE_NIGHTLY_AT.split(":"))
    if not (0 <= _hour < 24 and 0 <= _minute < 60):
        raise ValueError
except ValueError as exc:
    raise ImproperlyConfigured(f"TRUEPIPE_NIGHTLY_AT must be HH:MM, not {TRUEPIPE_NIGHTLY_AT!r}") from exc
TRUEPIPE_NIGHTLY_HOUR, TRUEPIPE_NIGHTLY_MINUTE = _hour, _minute


def huey_config(queue: str) -> dict[str, Any]:
    # utc=False: crontab times are the organisation's local time (Django sets TZ to TIME_ZONE).
    common: dict[str, Any] = {
        "name": env("TRUEPIPE_TASK_QUEUE_NAME", "truepipe"),
        "utc": False,
        "immediate": queue == "immediate",
        "consumer": {"workers": 2, "worker_type": "thread"},
    }
    if queue in {"sqlite", "immediate"}:
        with contextlib.suppress(OSError):  # read-only home: the worker says so when it opens the file
            TRUEPIPE_HOME.mkdir(parents=True, exist_ok=True)
        return {**common, "huey_class": "huey.SqliteHuey", "filename": str(TRUEPIPE_HOME / "tasks.sqlite3")}
    if queue.startswith(("redis://", "rediss://", "unix://")):
        return {**common, "huey_class": "huey.RedisHuey", "url": queue}
    raise ImproperlyConfigured(
        f"TRUEPIPE_TASK_QUEUE must be sqlite, immediate or a redis:// URL, not {queue!r}"
    )


HUEY = huey_config(TRUEPIPE_TASK_QUEUE)
