"""Benchmark: the JSON API over HTTP on a large organisation, against /healthz on the same server.

    python -m bench.bench_api                       # 1,000,000 deals, 100,000 accounts, 5,000 reps, SQLite
    python -m bench.bench_api --opportunities 100000 --accounts 10000 --reps 500   # a quick run
    python -m bench.bench_api --reuse               # keep the database built by an earlier run
    python -m bench.bench_api --database-url postgresql://postgres@127.0.0.1:5432/truepipe_bench

Steps, all through public commands and HTTP (stdlib only on the client side):

1. the data: `python -m bench.datagen` into a TRUEPIPE_HOME under --home (default
   $TMPDIR/truepipe-bench-api/...), on SQLite or on the PostgreSQL database of --database-url
   (created if missing; a database already holding other data is refused unless --reuse or
   --drop-existing). --reuse keeps a database that already holds exactly the requested sizes.
   `truepipe migrate` runs either way, so new indexes are measured;
2. API tokens (`truepipe token create`) for a rep (bench-rep-42, ~1/reps of the deals), a
   manager of one team (bench-mgr-0, 10 reps), the VP at the top of the reporting tree
   (a manager whose subtree is every deal) and an admin (bench-admin, `truepipe createsuperuser`);
3. `truepipe serve` (gunicorn) on a free port, until /healthz answers;
4. latency: --requests sequential requests per endpoint over one keep-alive connection (after
   a few warm-up requests), p50 and p99 in ms and each p50 divided by the p50 of /healthz
   measured in the same run; an endpoint still running after --budget seconds stops early
   (its n is marked with *), so a pathological endpoint cannot hold the run for hours;
5. throughput: --clients processes hammer one endpoint for --duration seconds each (/healthz,
   then the deal list as the rep and as the admin); requests per second and the ratio to /healthz;
6. a table, a one-line summary; the exit status is 1 if any request got anything but a 2xx.
   The tokens are revoked at the end; the server's log is serve.log in the TRUEPIPE_HOME.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
PROTECTED_DATABASES = {"postgres", "template0", "template1", "test"}
REQUEST_TIMEOUT = 120.0


# --- small helpers --------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[bench_api] {message}", file=sys.stderr, flush=True)


def truepipe_command() -> list[str]:
    """The installed `truepipe` console command next to this interpreter, else its module."""
    script = Path(sys.executable).parent / "truepipe"
    return [str(script)] if script.exists() else [sys.executable, "-m", "truepipe.cli"]


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(fraction * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- the database ---------------------------------------------------------------------------------


@dataclass
class Target:
    vendor: str  # "sqlite" or "postgresql"
    home: Path
    url: str | None  # None: SQLite in home

    @property
    def sqlite_path(self) -> Path:
        return self.home / "truepipe.sqlite3"

    @property
    def label(self) -> str:
        if self.vendor == "sqlite":
            return f"SQLite {self.sqlite_path}"
        parts = urlsplit(self.url or "")
        return f"PostgreSQL {parts.hostname}:{parts.port or 5432}/{self.database_name}"

    @property
    def database_name(self) -> str:
        return unquote(urlsplit(self.url or "").path.lstrip("/"))

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["TRUEPIPE_HOME"] = str(self.home)
        env.setdefault("TRUEPIPE_LOG_LEVEL", "WARNING")
        env.pop("DJANGO_SETTINGS_MODULE", None)
        if self.url:
            env["TRUEPIPE_DATABASE_URL"] = self.url
        else:
            env.pop("TRUEPIPE_DATABASE_URL", None)
        return env


def pg_connect(url: str, dbname: str | None = None):
    import psycopg
    from psycopg.conninfo import make_conninfo

    conninfo = make_conninfo(url, dbname=dbname) if dbname else url
    return psycopg.connect(conninfo, autocommit=True)


def pg_database_exists(target: Target) -> bool:
    with pg_connect(target.url or "", "postgres") as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target.database_name,)).fetchone()
        return row is not None


def dataset_counts(target: Target) -> dict[str, int] | None:
    """What the database holds: None when it has no truepipe tables (or does not exist)."""
    queries = {
        "users": "SELECT COUNT(*) FROM auth_user",
        "reps": "SELECT COUNT(*) FROM auth_user WHERE username LIKE 'bench-rep-%'",
        "accounts": "SELECT COUNT(*) FROM accounts_account",
        "opportunities": "SELECT COUNT(*) FROM pipeline_opportunity",
    }
    if target.vendor == "sqlite":
        if not target.sqlite_path.exists():
            return None
        conn = sqlite3.connect(target.sqlite_path)
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "pipeline_opportunity" not in tables:
                return None
            return {key: conn.execute(sql).fetchone()[0] for key, sql in queries.items()}
        finally:
            conn.close()
    if not pg_database_exists(target):
        return None
    with pg_connect(target.url or "") as conn:
        if conn.execute("SELECT to_regclass('pipeline_opportunity')").fetchone()[0] is None:
            return None
        return {key: conn.execute(sql).fetchone()[0] for key, sql in queries.items()}


def reset_database(target: Target, drop_existing: bool) -> None:
    """An empty database for datagen: a new SQLite file, or a (re)created PostgreSQL database."""
    if target.vendor == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{target.sqlite_path}{suffix}").unlink(missing_ok=True)
        return
    name = target.database_name
    if not name:
        raise SystemExit("--database-url needs a database name, e.g. postgresql://host:5432/truepipe_bench")
    exists = pg_database_exists(target)
    counts = dataset_counts(target) if exists else None
    if counts and counts["users"]:
        if not drop_existing:
            raise SystemExit(
                f"The database {name!r} already holds data ({counts}). Pass --reuse to benchmark it as it "
                f"is (it must hold the requested sizes), or --drop-existing to drop and recreate it."
            )
        if name in PROTECTED_DATABASES or name.startswith(("test_", "template")):
            raise SystemExit(f"Refusing to drop the database {name!r}: choose a dedicated one.")
        log(f"dropping and recreating the database {name!r}")
        with pg_connect(target.url or "", "postgres") as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        exists = False
    if not exists:
        log(f"creating the database {name!r}")
        with pg_connect(target.url or "", "postgres") as conn:
            conn.execute(f'CREATE DATABASE "{name}"')


def prepare_dataset(target: Target, args: argparse.Namespace) -> tuple[dict[str, int], float | None]:
    """Build (or reuse) the dataset; returns what it holds and datagen's seconds (None if reused)."""
    wanted = {"reps": args.reps, "accounts": args.accounts, "opportunities": args.opportunities}
    counts = dataset_counts(target)
    if args.reuse and counts:
        held = {key: counts[key] for key in wanted}
        if held == wanted:
            log(f"reusing {target.label}: {counts}")
            return counts, None
        raise SystemExit(
            f"--reuse: {target.label} holds {held}, not the requested {wanted}; "
            "run without --reuse to rebuild it (PostgreSQL: with --drop-existing)."
        )
    reset_database(target, args.drop_existing)
    command = [
        sys.executable,
        "-m",
        "bench.datagen",
        "--reps",
        str(args.reps),
        "--accounts",
        str(args.accounts),
        "--opportunities",
        str(args.opportunities),
        "--activities",
        "0",
        "--seed",
        str(args.seed),
    ]
    log(f"building the dataset in {target.label}: {' '.join(command[1:])}")
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=target.env(), check=True, stdout=sys.stderr)
    seconds = time.perf_counter() - started
    counts = dataset_counts(target) or {}
    log(f"dataset built in {seconds:.0f} s: {counts}")
    return counts, seconds


# --- people and tokens ----------------------------------------------------------------------------


def run_truepipe(target: Target, *arguments: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*truepipe_command(), *arguments],
        cwd=ROOT,
        env=target.env(),
        check=check,
        capture_output=True,
        text=True,
    )


def create_token(target: Target, username: str) -> str:
    result = run_truepipe(target, "token", "create", username, "--name", "bench_api", check=False)
    if result.returncode != 0:
        raise SystemExit(f"`truepipe token create {username}` failed: {result.stderr.strip()}")
    return result.stdout.strip().splitlines()[-1].strip()


def ensure_admin(target: Target, username: str) -> None:
    exists = run_truepipe(target, "token", "list", username, check=False)
    if exists.returncode == 0:
        return
    run_truepipe(
        target, "createsuperuser", "--noinput", "--username", username, "--email", f"{username}@bench.test"
    )


# --- the server -----------------------------------------------------------------------------------


class Server:
    """`truepipe serve` in its own process group, its output in a log file."""

    def __init__(self, target: Target, workers: int | None) -> None:
        self.target = target
        self.port = free_port()
        self.log_path = target.home / "serve.log"
        command = [*truepipe_command(), "serve", "--bind", f"127.0.0.1:{self.port}"]
        if workers:
            command += ["--workers", str(workers)]
        self.log_file = self.log_path.open("w")
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=target.env(),
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_healthy(self, timeout: float = 90.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"`truepipe serve` exited ({self.process.returncode}):\n{self.tail()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/healthz")
                response = conn.getresponse()
                body = response.read()
                conn.close()
                if response.status == 200:
                    return json.loads(body)
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"`truepipe serve` did not answer /healthz within {timeout:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        self.log_file.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            except ProcessLookupError:
                pass
        self.log_file.close()


# --- the client -----------------------------------------------------------------------------------


class Client:
    """One keep-alive connection; reconnects after a connection error."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def get(self, path: str, token: str | None) -> tuple[int, bytes]:
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT)
            try:
                self.conn.request("GET", path, headers=headers)
                response = self.conn.getresponse()
                body = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self.close()
                return response.status, body
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt == 2:
                    return 0, b"connection error"
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@dataclass
class Scenario:
    name: str
    who: str
    paths: list[str]
    token: str | None
    times_ms: list[float] = field(default_factory=list)
    rows: int | None = None
    statuses: Counter = field(default_factory=Counter)
    first_error: str = ""
    cut_short: bool = False

    @property
    def p50(self) -> float:
        return percentile(sorted(self.times_ms), 0.50)

    @property
    def p99(self) -> float:
        return percentile(sorted(self.times_ms), 0.99)

    @property
    def failures(self) -> int:
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)


def record(scenario: Scenario, status: int, body: bytes) -> None:
    scenario.statuses[status] += 1
    if not 200 <= status < 300 and not scenario.first_error:
        scenario.first_error = f"{status}: {body[:300].decode(errors='replace')}"


def measure(client: Client, scenario: Scenario, requests: int, warmup: int, budget: float) -> None:
    """Warm-up (at most a tenth of the budget), then `requests` timed ones or until the budget is spent."""
    started = time.perf_counter()
    for i in range(warmup):
        status, body = client.get(scenario.paths[i % len(scenario.paths)], scenario.token)
        record(scenario, status, body)
        if status == 200 and scenario.rows is None and body.startswith(b"{"):
            scenario.rows = json.loads(body).get("count")
        if time.perf_counter() - started > budget / 10:
            break
    started = time.perf_counter()
    for i in range(requests):
        path = scenario.paths[i % len(scenario.paths)]
        before = time.perf_counter()
        status, body = client.get(path, scenario.token)
        scenario.times_ms.append((time.perf_counter() - before) * 1000)
        record(scenario, status, body)
        if time.perf_counter() - started > budget:
            scenario.cut_short = True
            break


def load_worker(port: int, path: str, token: str | None, start_at: float, stop_at: float, results) -> None:
    """One client process: requests back to back between start_at and stop_at (wall clock)."""
    client = Client(port)
    statuses: Counter = Counter()
    first_error = ""
    delay = start_at - time.time()
    if delay > 0:
        time.sleep(delay)
    done = 0
    while time.time() < stop_at:
        status, body = client.get(path, token)
        statuses[status] += 1
        done += 1
        if not 200 <= status < 300 and not first_error:
            first_error = f"{status}: {body[:300].decode(errors='replace')}"
    elapsed = time.time() - start_at
    client.close()
    results.put((done, elapsed, dict(statuses), first_error))


@dataclass
class Throughput:
    name: str
    who: str
    path: str
    token: str | None
    requests: int = 0
    seconds: float = 0.0
    statuses: Counter = field(default_factory=Counter)
    first_error: str = ""

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def failures(self) -> int:
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)


def throughput(port: int, run: Throughput, clients: int, duration: float) -> None:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    start_at = time.time() + 2.0  # time for the spawned interpreters to start
    workers = [
        context.Process(
            target=load_worker, args=(port, run.path, run.token, start_at, start_at + duration, results)
        )
        for _ in range(clients)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=duration + REQUEST_TIMEOUT + 60) for _ in workers]
    for worker in workers:
        worker.join()
    run.requests = sum(done for done, _, _, _ in outcomes)
    run.seconds = max(elapsed for _, elapsed, _, _ in outcomes)
    for _, _, statuses, first_error in outcomes:
        run.statuses.update(statuses)
        run.first_error = run.first_error or first_error


# --- the run --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_api",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = parser.add_argument_group("data")
    data.add_argument("--opportunities", type=int, default=1_000_000, help="deals (default 1,000,000)")
    data.add_argument("--accounts", type=int, default=100_000, help="accounts (default 100,000)")
    data.add_argument(
        "--reps",
        "--users",
        type=int,
        default=5000,
        help="sales reps (default 5,000); datagen adds a manager per 10 reps and a VP",
    )
    data.add_argument("--seed", type=int, default=7, help="datagen's random seed (default 7)")
    data.add_argument(
        "--database-url",
        default=None,
        help="PostgreSQL URL, e.g. postgresql://postgres@127.0.0.1:5432/truepipe_bench (default: SQLite)",
    )
    data.add_argument(
        "--home",
        type=Path,
        default=None,
        help="TRUEPIPE_HOME for the run (default: $TMPDIR/truepipe-bench-api/<database>-<sizes>)",
    )
    data.add_argument(
        "--reuse", action="store_true", help="keep a database that already holds the requested sizes"
    )
    data.add_argument(
        "--drop-existing",
        action="store_true",
        help="PostgreSQL: drop and recreate the database if it holds data (never postgres/test/test_*)",
    )
    load = parser.add_argument_group("load")
    load.add_argument("--requests", type=int, default=500, help="sequential requests per endpoint (500)")
    load.add_argument("--warmup", type=int, default=10, help="unmeasured requests per endpoint first (10)")
    load.add_argument(
        "--budget",
        type=float,
        default=120.0,
        help="stop an endpoint's sequential requests after this many seconds (120): its n is then smaller",
    )
    load.add_argument("--clients", type=int, default=16, help="concurrent client processes (16)")
    load.add_argument("--duration", type=float, default=10.0, help="seconds per throughput run (10)")
    load.add_argument("--workers", type=int, default=None, help="`truepipe serve --workers` (its default)")
    args = parser.parse_args(argv)
    if args.database_url and not args.database_url.startswith(("postgres://", "postgresql://")):
        parser.error("--database-url must be a postgresql:// URL (SQLite is the default)")
    if min(args.opportunities, args.accounts, args.reps, args.requests, args.clients) < 1:
        parser.error("sizes, --requests and --clients must be at least 1")
    return args


def make_target(args: argparse.Namespace) -> Target:
    sizes = f"{args.opportunities}o-{args.accounts}a-{args.reps}r"
    if args.database_url:
        vendor = "postgresql"
        name = unquote(urlsplit(args.database_url).path.lstrip("/")) or "postgres"
        default_home = f"postgresql-{name}"
    else:
        vendor = "sqlite"
        default_home = f"sqlite-{sizes}"
    home = args.home or Path(tempfile.gettempdir()) / "truepipe-bench-api" / default_home
    home.mkdir(parents=True, exist_ok=True)
    return Target(vendor=vendor, home=home.resolve(), url=args.database_url)


def scenarios_for(args: argparse.Namespace, tokens: dict[str, str], ids: tuple[int, int]) -> list[Scenario]:
    rng = random.Random(args.seed)
    low, high = ids
    n = max(1, min(args.requests, 500))
    detail_ids = sorted({low + (high - low) * i // max(1, n - 1) for i in range(n)})
    rng.shuffle(detail_ids)
    owner = f"bench-rep-{min(17, args.reps - 1)}"
    searches = [f"Account {rng.randrange(max(1, args.accounts // 10)) * 10:06d}"[:-1] for _ in range(50)]

    def list_path(**params: object) -> str:
        return "/api/v1/opportunities?" + urlencode({"limit": 50, **params})

    return [
        Scenario("GET /healthz", "-", ["/healthz"], None),
        Scenario("GET /api/v1/opportunities?limit=50", "rep", [list_path()], tokens["rep"]),
        Scenario("GET /api/v1/opportunities?limit=50", "manager", [list_path()], tokens["manager"]),
        Scenario("GET /api/v1/opportunities?limit=50", "vp", [list_path()], tokens["vp"]),
        Scenario("GET /api/v1/opportunities?limit=50", "admin", [list_path()], tokens["admin"]),
        Scenario(f"  ...&owner={owner}", "admin", [list_path(owner=owner)], tokens["admin"]),
        Scenario(f"  ...&owner={owner}", "vp", [list_path(owner=owner)], tokens["vp"]),
        Scenario("  ...&ordering=-amount", "rep", [list_path(ordering="-amount")], tokens["rep"]),
        Scenario("  ...&ordering=-amount", "admin", [list_path(ordering="-amount")], tokens["admin"]),
        Scenario(
            "GET /api/v1/opportunities/{id}",
            "admin",
            [f"/api/v1/opportunities/{pk}" for pk in detail_ids],
            tokens["admin"],
        ),
        Scenario(
            "GET /api/v1/accounts?q=Account 0NNNN",
            "rep",
            ["/api/v1/accounts?" + urlencode({"q": q, "limit": 50}) for q in searches],
            tokens["rep"],
        ),
        Scenario(
            "GET /api/v1/accounts?q=Account 0NNNN",
            "admin",
            ["/api/v1/accounts?" + urlencode({"q": q, "limit": 50}) for q in searches],
            tokens["admin"],
        ),
    ]


def id_range(client: Client, token: str) -> tuple[int, int]:
    ends = []
    for ordering in ("id", "-id"):
        status, body = client.get(f"/api/v1/opportunities?limit=1&ordering={ordering}", token)
        if status != 200:
            raise SystemExit(f"Cannot list opportunities as the admin: {status} {body[:300]!r}")
        items = json.loads(body)["items"]
        if not items:
            raise SystemExit("The database holds no opportunities.")
        ends.append(items[0]["id"])
    return ends[0], ends[1]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    target = make_target(args)
    counts, datagen_seconds = prepare_dataset(target, args)
    log("truepipe migrate (applies any new migration, e.g. an index)")
    migrated = run_truepipe(target, "migrate", "--no-input", check=False)
    if migrated.returncode != 0:
        raise SystemExit(f"`truepipe migrate` failed:\n{migrated.stderr}")

    people = {
        "rep": f"bench-rep-{min(42, args.reps - 1)}",
        "manager": "bench-mgr-0",
        "vp": "bench-vp",
        "admin": "bench-admin",
    }
    ensure_admin(target, people["admin"])
    tokens = {role: create_token(target, username) for role, username in people.items()}
    log("tokens created for " + ", ".join(f"{role} {name}" for role, name in people.items()))

    server = Server(target, args.workers)
    try:
        health = server.wait_healthy()
        log(f"truepipe serve answers on 127.0.0.1:{server.port} ({health}); log in {server.log_path}")
        client = Client(server.port)
        scenarios = scenarios_for(args, tokens, id_range(client, tokens["admin"]))
        for scenario in scenarios:
            log(f"latency: {scenario.name} as {scenario.who}")
            measure(client, scenario, args.requests, args.warmup, args.budget)
        client.close()

        list_path = "/api/v1/opportunities?limit=50"
        runs = [
            Throughput("GET /healthz", "-", "/healthz", None),
            Throughput("GET /api/v1/opportunities?limit=50", "rep", list_path, tokens["rep"]),
            Throughput("GET /api/v1/opportunities?limit=50", "admin", list_path, tokens["admin"]),
        ]
        for run in runs:
            log(f"throughput: {run.name} as {run.who}, {args.clients} clients for {args.duration:g} s")
            throughput(server.port, run, args.clients, args.duration)
    finally:
        server.stop()
        for token in tokens.values():
            run_truepipe(target, "token", "revoke", token[:10], check=False)

    failed = report(args, target, counts, datagen_seconds, scenarios, runs)
    return 1 if failed else 0


def report(
    args: argparse.Namespace,
    target: Target,
    counts: dict[str, int],
    datagen_seconds: float | None,
    scenarios: list[Scenario],
    runs: list[Throughput],
) -> bool:
    workers = args.workers or max(2, min(4, os.cpu_count() or 1))
    built = f"built in {datagen_seconds:.0f} s" if datagen_seconds is not None else "reused"
    print()
    print(f"truepipe API benchmark: {target.label} ({built})")
    print(
        f"data: {counts.get('opportunities', 0):,} opportunities, {counts.get('accounts', 0):,} accounts, "
        f"{counts.get('users', 0):,} users ({counts.get('reps', 0):,} reps); server: truepipe serve, "
        f"{workers} gunicorn workers x 4 threads; {os.cpu_count()} CPUs"
    )
    print(
        f"latency: n sequential requests per row ({args.requests}, fewer when a row exceeded its "
        f"{args.budget:g} s budget), one keep-alive connection, after up to {args.warmup} warm-up requests"
    )
    print()
    base = scenarios[0].p50
    header = (
        f"{'endpoint':<40} {'as':<8} {'rows':>10} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'p50/healthz':>12} {'non-2xx':>8}"
    )
    print(header)
    print("-" * len(header))
    for s in scenarios:
        rows = "-" if s.rows is None else f"{s.rows:,}"
        n = f"{len(s.times_ms)}{'*' if s.cut_short else ''}"
        print(
            f"{s.name:<40} {s.who:<8} {rows:>10} {n:>5} {s.p50:>8.1f} {s.p99:>8.1f} "
            f"{s.p50 / base:>11.1f}x {s.failures:>8}"
        )
    print()
    print(f"throughput: {args.clients} client processes, {args.duration:g} s each")
    header = f"{'endpoint':<40} {'as':<8} {'requests':>10} {'req/s':>8} {'/healthz':>9} {'non-2xx':>8}"
    print(header)
    print("-" * len(header))
    base_rate = runs[0].rate
    for r in runs:
        ratio = r.rate / base_rate if base_rate else float("nan")
        print(f"{r.name:<40} {r.who:<8} {r.requests:>10,} {r.rate:>8.1f} {ratio:>8.2f}x {r.failures:>8}")

    failures = [(f"{s.name} as {s.who}", s.failures, s.first_error) for s in scenarios if s.failures]
    failures += [(f"{r.name} as {r.who} (throughput)", r.failures, r.first_error) for r in runs if r.failures]
    if failures:
        print()
        for name, count, error in failures:
            print(f"FAILED: {name}: {count} non-2xx; first: {error}")
    slowest = max(scenarios[1:], key=lambda s: s.p50)
    worst_rate = min(runs[1:], key=lambda r: r.rate)
    print()
    print(
        f"SUMMARY {target.vendor} {counts.get('opportunities', 0):,} deals: healthz p50 {base:.1f} ms; "
        f"slowest p50 {slowest.p50:.1f} ms = {slowest.p50 / base:.0f}x healthz "
        f"({slowest.name.strip()} as {slowest.who}); list throughput {worst_rate.rate:.0f} req/s as "
        f"{worst_rate.who} = {worst_rate.rate / base_rate:.2f}x healthz ({base_rate:.0f} req/s); "
        f"{sum(f[1] for f in failures)} non-2xx"
    )
    return bool(failures)


if __name__ == "__main__":
    sys.exit(main())
