"""Browser tests: Playwright's sync API driving Debian's /usr/bin/chromium against live_server.

No browser is ever downloaded. Without chromium the tests are skipped, except
under CI (env CI set), where a missing browser fails them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; Django's ORM must still be usable here.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(autouse=True)
def _restore_migrated_rows():
    """Put back the rows migrations created (the default stages) once a transactional test flushed them.

    Set up before the database fixtures, so this runs after their flush: later tests in this
    worker that do not ask for serialized_rollback still find the pipeline's stages.
    """
    yield
    from django.db import connection

    contents = getattr(connection, "_test_serialized_contents", None)
    if contents:
        from truepipe.pipeline.models import Stage

        if not Stage.objects.exists():
            connection.creation.deserialize_db_from_string(contents)


@pytest.fixture
def chromium():
    """A Chromium per test. Playwright's sync API switches greenlets (and so Django's
    per-context database connection) while it runs, so it must start after the test's
    database set-up and stop before its flush: hence function scope, not session."""
    if not (os.path.exists(CHROMIUM) and shutil.which(CHROMIUM)):
        message = f"{CHROMIUM} is not installed"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: browser tests must run under CI")
        pytest.skip(message)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("playwright is not installed: browser tests must run under CI")
        pytest.skip("playwright is not installed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def screenshot():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str, full_page: bool = True) -> Path:
        path = SCREENSHOTS / name
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return take


@pytest.fixture
def new_page(chromium, live_server):
    """A fresh browser context per call; `new_page(width, height)`."""
    contexts = []

    def make(width: int = 1366, height: int = 900):
        context = chromium.new_context(viewport={"width": width, "height": height}, base_url=live_server.url)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()
