"""Benchmark: ingest an mbox of customer mail against a large organisation.

    python -m bench.bench_capture                                  # SQLite, fresh temporary TRUEPIPE_HOME
    python -m bench.bench_capture --messages 100000 --contacts 100000 --opportunities 1000000
    python -m bench.bench_capture --database-url postgresql://postgres@127.0.0.1:5432/truepipe_bench_capture
    python -m bench.bench_capture --home /tmp/tp-capture --reuse   # keep the organisation between runs
    python -m bench.bench_capture --home /tmp/tp-capture --prepare-only  # build, then copy the home per run

What it builds: an organisation by bench.datagen (reps, accounts, open deals; no activities),
then one domain per account and --contacts contacts with an address at their account's domain,
evaluated once (as the nightly job would have), then an mbox of --messages messages:

- 70% between a rep (rep{n}@bench.test, a user; the owner of an open deal at the account when
  there is one) and one or two known contacts of one account, a quarter of them replies in a
  thread (In-Reply-To / References), bodies of 300-3,000 characters;
- 8% with an unknown person at a known account's domain (proposed as contacts),
- 8% with people at domains no account has (the shadow pipeline's raw material),
- 6% among colleagues only (ignored), 4% HTML-only multipart with an attachment,
- 2% RFC 2047 encoded names and subjects, 2% without any usable date (rejected).

What it measures, in the same run:
- baseline: a bare parse of the same mbox: `for message in mailbox.mbox(path)` (the standard
  library's mbox reader and e-mail parser, every message fully parsed), messages/s;
- ingest: `Ingest().run(read_paths(...))` — parse, match to users, contacts, accounts and deals,
  write activities, participants, the ledger and touched domains through the service layer, and
  the engine's incremental evaluation of every batch — messages/s and its ratio to the baseline;
- again: the same mbox a second time (everything already captured: the dedup path).

The aim: ingest at least half the bare-parse rate (ratio >= 0.5).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import mailbox
import os
import random
import sys
import tempfile
import time
from email.utils import format_datetime
from pathlib import Path

from bench.databases import prepare_database


def log(message: str) -> None:
    print(f"[bench_capture] {message}", file=sys.stderr, flush=True)


def build_organisation(args: argparse.Namespace) -> None:
    from django.core.management import call_command
    from django.db import connection

    from bench.datagen import Writer, generate

    call_command("migrate", verbosity=0)
    from truepipe.accounts.models import Account

    if Account.objects.exists():
        log("organisation already built (--reuse)")
        return
    started = time.perf_counter()
    generate(reps=args.reps, accounts=args.accounts, opportunities=args.opportunities, activities=0)
    writer = Writer()
    first = writer.max_id("accounts_account") - args.accounts + 1
    writer.insert(
        "accounts_accountdomain",
        ("account_id", "domain"),
        ((first + i, f"acct{i}.example") for i in range(args.accounts)),
        args.accounts,
        "domains",
    )
    now = writer.ts(dt.datetime.now(dt.UTC))
    first_contact = writer.max_id("accounts_contact") + 1
    writer.insert(
        "accounts_contact",
        (
            "id",
            "first_name",
            "last_name",
            "title",
            "phone",
            "account_id",
            "created_at",
            "updated_at",
            "version",
        ),
        (
            (first_contact + j, "Contact", str(j), "", "", first + j % args.accounts, now, now, 1)
            for j in range(args.contacts)
        ),
        args.contacts,
        "contacts",
    )
    writer.insert(
        "accounts_contactemail",
        ("contact_id", "email"),
        ((first_contact + j, f"c{j}@acct{j % args.accounts}.example") for j in range(args.contacts)),
        args.contacts,
        "contact e-mails",
    )
    writer.reset_sequences(["accounts_contact", "accounts_contactemail", "accounts_accountdomain"])
    # Settle the freshly loaded database as a running installation would be: evaluated (the rules'
    # violations already open, so a captured mail resolves or keeps them rather than finding every
    # deal's for the first time), statistics gathered, SQLite's write-ahead log folded back.
    from truepipe.hygiene.engine import evaluate

    log("first evaluation of the organisation")
    evaluate()
    with connection.cursor() as cursor:
        # PostgreSQL: VACUUM too, as autovacuum would have by then on a running database (it
        # marks the pages all-visible, which lets the deal lookups read the index alone).
        cursor.execute("ANALYZE" if connection.vendor == "sqlite" else "VACUUM ANALYZE")
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    log(f"organisation built in {time.perf_counter() - started:.0f} s")


WORDS = (
    "pricing renewal contract rollout security review legal procurement budget timeline pilot "
    "licences seats onboarding training integration kickoff proposal discount quarter sign-off"
).split()


def deal_owners(accounts: int) -> dict[int, list[int]]:
    """{account number: [rep numbers owning an open deal there]}: who writes to whom."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT MIN(id) FROM accounts_account")
        first = cursor.fetchone()[0]
        cursor.execute(
            "SELECT o.account_id, u.username FROM pipeline_opportunity o"
            " JOIN pipeline_stage s ON s.id = o.stage_id JOIN auth_user u ON u.id = o.owner_id"
            " WHERE s.kind = 'open' AND o.account_id IS NOT NULL"
        )
        owners: dict[int, list[int]] = {}
        for account_id, username in cursor.fetchall():
            owners.setdefault(account_id - first, []).append(int(username.rsplit("-", 1)[1]))
    return owners


def write_mbox(path: Path, args: argparse.Namespace, owners: dict[int, list[int]]) -> None:
    """The test mbox, deterministic for a seed, written as mbox text (the standard library's message
    builder takes minutes for a hundred thousand messages)."""
    rng = random.Random(args.seed)
    start = dt.datetime(2026, 6, 1, 8, tzinfo=dt.UTC)
    threads: list[tuple[str, str]] = []  # (Message-ID, subject) of earlier messages
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for n in range(args.messages):
            account = rng.randrange(args.accounts)
            # The rep who writes: the owner of a deal there (most mail), else the account's owner.
            reps = owners.get(account) or [account % args.reps]
            rep = f"rep{rng.choice(reps)}@bench.test"
            contacts_here = list(range(account, args.contacts, args.accounts))[:3] or [0]
            customer = [f"c{rng.choice(contacts_here)}@acct{account}.example"]
            roll = rng.random()
            if roll < 0.08:
                customer.append(f"new{n}@acct{account}.example")
            elif roll < 0.16:
                customer = [f"buyer{n % 5000}@prospect{n % 9000}.example"]
            elif roll < 0.22:
                customer = []
            people = customer or [f"colleague{n % 50}@bench.test"]
            when = start + dt.timedelta(minutes=3 * n + rng.randrange(3))
            headers = []
            subject = f"{rng.choice(WORDS).title()} {rng.choice(WORDS)} for account {account}"
            if threads and rng.random() < 0.25:
                parent, parent_subject = threads[rng.randrange(len(threads))]
                subject = "Re: " + parent_subject.removeprefix("Re: ")
                headers += [f"In-Reply-To: {parent}", f"References: {parent}"]
            if 0.22 <= roll < 0.24:
                sender, to = f"=?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <{people[0]}>", rep
                subject = f"=?utf-8?q?Angebot_f=C3=BCr_{account}?="
            elif rng.random() < 0.5:
                sender, to = rep, ", ".join(people)
            else:
                sender, to = people[0], rep
            message_id = f"<bench-{args.seed}-{n}@mail.bench.test>"
            headers = [f"From: {sender}", f"To: {to}", f"Subject: {subject}", *headers]
            undated = roll >= 0.98  # no Date header and a separator line without a date
            if not undated:
                headers.append(f"Date: {format_datetime(when)}")
            headers += [f"Message-ID: {message_id}", "MIME-Version: 1.0"]
            body = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(50, 500)))
            body = "\n".join(body[i : i + 76] for i in range(0, len(body), 76))
            if 0.24 <= roll < 0.28:
                attachment = base64.encodebytes(bytes(rng.randrange(256) for _ in range(2000))).decode()
                headers.append('Content-Type: multipart/mixed; boundary="b1"')
                body = (
                    "--b1\nContent-Type: text/html; charset=utf-8\n\n"
                    f"<html><body><p>{body}</p></body></html>\n"
                    f'--b1\nContent-Type: application/pdf; name="quote.pdf"\n'
                    f'Content-Disposition: attachment; filename="quote.pdf"\n'
                    f"Content-Transfer-Encoding: base64\n\n{attachment}--b1--\n"
                )
            else:
                headers += ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 7bit"]
            stamp = "" if undated else " " + when.strftime("%a %b %d %H:%M:%S %Y")
            out.write(f"From MAILER-DAEMON{stamp}\n" + "\n".join(headers) + "\n\n" + body + "\n\n")
            if len(threads) < 5000:
                threads.append((message_id, subject))
            elif rng.random() < 0.1:
                threads[rng.randrange(len(threads))] = (message_id, subject)


def bare_parse(path: Path) -> tuple[float, int]:
    started = time.perf_counter()
    count = 0
    box = mailbox.mbox(path, create=False)
    for message in box:
        count += 1 if message is not None else 0
    box.close()
    return time.perf_counter() - started, count


def ingest(path: Path):  # type: ignore[no-untyped-def]
    from truepipe.capture.ingest import Ingest
    from truepipe.capture.models import CaptureSource
    from truepipe.capture.sources import read_paths

    started = time.perf_counter()
    report = Ingest().run(read_paths([path], source=CaptureSource.FILE))
    return time.perf_counter() - started, report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--opportunities", type=int, default=50_000)
    parser.add_argument("--reps", type=int, default=500)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--database-url", help="PostgreSQL URL (default: SQLite under --home).")
    parser.add_argument("--home", type=Path, help="TRUEPIPE_HOME to use (default: a temporary directory).")
    parser.add_argument("--reuse", action="store_true", help="Keep an organisation already built in --home.")
    parser.add_argument(
        "--prepare-only",
        action="store_true",
        help="Build the organisation and the mbox, then stop (copy --home to rerun from the same start).",
    )
    args = parser.parse_args(argv)

    home = args.home or Path(tempfile.mkdtemp(prefix="tp-bench-capture-"))
    home.mkdir(parents=True, exist_ok=True)
    prepare_database(args.database_url, home)
    import django

    django.setup()
    from django.db import connection

    build_organisation(args)
    path = home / f"bench-{args.messages}-{args.seed}.mbox"
    if not path.exists():
        started = time.perf_counter()
        write_mbox(path, args, deal_owners(args.accounts))
        log(f"wrote {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.0f} s")
    if args.prepare_only:
        return
    from truepipe.capture.models import CapturedItem

    if CapturedItem.objects.exists():
        raise SystemExit("This database already captured mail: use a fresh --home (or drop --reuse).")

    bare_s, count = bare_parse(path)
    log(f"bare parse: {count} messages in {bare_s:.1f} s")
    ingest_s, report = ingest(path)
    log(f"ingest: {report.summary()}")
    again_s, again = ingest(path)
    bare_rate, ingest_rate, again_rate = count / bare_s, count / ingest_s, count / again_s

    size = path.stat().st_size / 1e6
    print()
    print(
        f"capture benchmark: {connection.vendor}, {count:,} messages ({size:.0f} MB), {args.contacts:,} "
        f"contacts, {args.opportunities:,} deals, {args.reps:,} reps; load {os.getloadavg()[0]:.2f}"
    )
    print(f"{'':34}{'seconds':>10}{'msg/s':>10}{'vs bare':>10}")
    rows = [
        ("bare parse (mailbox + email)", bare_s, bare_rate),
        ("ingest (match, write, evaluate)", ingest_s, ingest_rate),
        ("again (all already captured)", again_s, again_rate),
    ]
    for label, seconds, rate in rows:
        print(f"{label:34}{seconds:>10.1f}{rate:>10,.0f}{rate / bare_rate:>10.2f}")
    counts = report.counts
    print(
        f"outcome: {counts['logged']:,} logged, {counts['triage']:,} triage, {counts['ignored']:,} ignored, "
        f"{counts['rejected']:,} rejected; second run {again.counts['duplicate']:,} already captured"
    )
    ratio = ingest_rate / bare_rate
    print(
        f"SUMMARY {connection.vendor}: ingest {ingest_rate:,.0f} msg/s = {ratio:.2f}x the bare parse "
        f"({bare_rate:,.0f} msg/s); aim >= 0.5"
    )


if __name__ == "__main__":
    main()
