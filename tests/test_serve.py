"""`truepipe serve`: the production-style server answers pages and static files, and explains bad input."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from truepipe.web.management.commands.serve import parse_bind


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cli_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUEPIPE_")}
    env["TRUEPIPE_HOME"] = str(home)
    return env


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def wait_until_listening(port: int, server: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"the server exited early: {server.communicate()[1]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("the server did not start listening in time")


@pytest.fixture
def migrated_home(tmp_path):
    home = tmp_path / "home"
    subprocess.run(
        [sys.executable, "-m", "truepipe.cli", "migrate", "--noinput", "-v0"],
        env=cli_env(home),
        check=True,
        timeout=120,
    )
    return home


def test_serve_answers_the_login_page_and_static_files(migrated_home):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "truepipe.cli", "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        env=cli_env(migrated_home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_listening(port, server)
        assert get(f"http://127.0.0.1:{port}/login/") == 200
        assert get(f"http://127.0.0.1:{port}/static/truepipe/htmx.min.js") == 200
    finally:
        server.terminate()
        try:
            server.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()
    assert server.returncode == 0


def test_serve_warns_about_unapplied_migrations_and_refuses_a_port_in_use(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "truepipe.cli", "serve", "--bind", f"127.0.0.1:{port}"],
            env=cli_env(tmp_path / "fresh"),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0
    assert "truepipe migrate" in result.stderr
    assert f"Cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("bind", "message"),
    [
        ("8000", "HOST:PORT"),
        ("localhost:", "HOST:PORT"),
        ("127.0.0.1:99999", "from 1 to 65535"),
        ("127.0.0.1:http", "from 1 to 65535"),
    ],
)
def test_a_bad_bind_address_is_explained(bind, message):
    with pytest.raises(CommandError, match=message):
        parse_bind(bind)


def test_ipv6_bind_addresses_are_understood():
    assert parse_bind("[::1]:8080") == ("::1", 8080)


@pytest.mark.django_db
def test_a_silly_worker_count_is_refused():
    with pytest.raises(CommandError, match="--workers"):
        call_command("serve", "--workers", "0")
