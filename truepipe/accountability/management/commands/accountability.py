"""`truepipe accountability …`: the accountability loop from the command line.

    truepipe accountability offenses --as maya [--rep ravi] [--format table|json]
    truepipe accountability todo --as maya
    truepipe accountability apply CONSEQUENCE_ID --as maya --note "Coached on Monday"
    truepipe accountability waive CONSEQUENCE_ID --as maya --reason "Customer freeze"
    truepipe accountability dispute OFFENSE_ID --as ravi --reason "The deal was on hold"
    truepipe accountability resolve DISPUTE_ID --as maya (--uphold | --reject) --note "…"
    truepipe accountability acknowledge [OFFENSE_ID] --as ravi   (no id: the current policy)
    truepipe accountability escalate [--day YYYY-MM-DD]

Every decision goes through the same services as the page and the API, as the
person named by --as (their permissions, their name in the audit log).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from truepipe.accountability import queries, services
from truepipe.accountability.models import Consequence, Dispute, Offense
from truepipe.accountability.offenses import escalate_overdue
from truepipe.core.errors import ServiceError
from truepipe.core.visibility import visible


def day(text: str) -> dt.date:
    """A YYYY-MM-DD argument within the years a 90-day window around it can reach."""
    try:
        value = dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day (YYYY-MM-DD)") from None
    if not dt.date(1900, 1, 1) <= value <= dt.date(9000, 12, 31):
        raise argparse.ArgumentTypeError(f"{text} is out of range")
    return value


class Command(BaseCommand):
    help = "Offenses, consequences and disputes: list them, and decide as a named person."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)

        def person(sub: CommandParser) -> CommandParser:
            sub.add_argument("--as", dest="as_user", required=True, metavar="USERNAME")
            return sub

        listing = person(actions.add_parser("offenses", help="Offenses this person can see."))
        listing.add_argument("--rep", help="Only this rep's (username).")
        listing.add_argument("--format", choices=["table", "json"], default="table")
        person(actions.add_parser("todo", help="Consequences this person must apply or waive, and disputes."))
        apply = person(actions.add_parser("apply", help="Record a consequence as carried out."))
        apply.add_argument("id", type=int)
        apply.add_argument("--note", required=True)
        apply.add_argument("--on", type=day, help="When (default today).")
        waive = person(actions.add_parser("waive", help="Waive a consequence, with a reason."))
        waive.add_argument("id", type=int)
        waive.add_argument("--reason", required=True)
        dispute = person(actions.add_parser("dispute", help="Dispute your offense, with a reason."))
        dispute.add_argument("id", type=int)
        dispute.add_argument("--reason", required=True)
        resolve = person(actions.add_parser("resolve", help="Uphold or reject a dispute."))
        resolve.add_argument("id", type=int)
        decision = resolve.add_mutually_exclusive_group(required=True)
        decision.add_argument("--uphold", action="store_true", help="Overturn the offense.")
        decision.add_argument("--reject", action="store_true", help="The offense stands.")
        resolve.add_argument("--note", required=True)
        ack = person(actions.add_parser("acknowledge", help="Acknowledge an offense, or the policy."))
        ack.add_argument("id", type=int, nargs="?")
        fair = person(actions.add_parser("fairness", help="The fairness audit over what this person sees."))
        fair.add_argument("--from", dest="start", type=day, help="Default: 90 days ago.")
        fair.add_argument("--to", dest="end", type=day, help="Default: today.")
        fair.add_argument("--under", help="Only one manager's team (username).")
        fair.add_argument("--format", choices=["table", "json"], default="table")
        export = person(
            actions.add_parser("export", help="CSV of applied consequences finance or HR must act on.")
        )
        export.add_argument("--for", dest="audience", choices=["finance", "hr"], required=True)
        export.add_argument("--from", dest="start", type=day, help="Applied on or after.")
        escalate = actions.add_parser("escalate", help="Escalate consequences past their deadline now.")
        escalate.add_argument("--day", type=day, help="As of this day (default today).")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "escalate":
            done = escalate_overdue(options.get("day") or timezone.localdate())
            self.stdout.write(f"escalated {len(done)} consequence{'s' if len(done) != 1 else ''}")
            return
        user = self._user(options["as_user"])
        try:
            getattr(self, f"_{action}")(user, options)
        except ServiceError as exc:
            raise CommandError(exc.message) from None

    def _user(self, username: str) -> Any:
        user = get_user_model().objects.filter(username__iexact=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        return user

    def _one(self, user: Any, model: Any, pk: int) -> Any:
        found = visible(user, model).filter(pk=pk).first()
        if found is None:
            raise CommandError(f"No {model._meta.verbose_name} #{pk} that {user.username} can see.")
        return found

    def _offenses(self, user: Any, options: dict[str, Any]) -> None:
        offenses = queries.offenses(user)
        if options.get("rep"):
            offenses = offenses.filter(rep__username__iexact=options["rep"])
        rows: list[dict[str, Any]] = []
        for o in offenses:
            current = [c for c in o.consequences.all() if c.replaced_by_id is None]
            last = current[-1] if current else None
            rows.append(
                {
                    "id": o.pk,
                    "rep": o.rep.username,
                    "week": o.week,
                    "level": o.level,
                    "status": o.status,
                    "summary": o.summary,
                    "consequence": last
                    and {
                        "id": last.pk,
                        "name": last.name,
                        "state": last.state,
                        "deadline": str(last.deadline),
                    },
                }
            )
        if options["format"] == "json":
            self.stdout.write(json.dumps(rows, indent=2))
            return
        self.stdout.write(f"{'id':>5}  {'rep':<12} {'week':<9} {'lvl':>3}  {'status':<10} consequence")
        for r in rows:
            c = r["consequence"]
            what = f"#{c['id']} {c['state']}: {c['name']} (by {c['deadline']})" if c else "-"
            self.stdout.write(
                f"{r['id']:>5}  {r['rep']:<12} {r['week']:<9} {r['level']:>3}  {r['status']:<10} {what}"
            )

    def _todo(self, user: Any, options: dict[str, Any]) -> None:
        decide = list(queries.to_decide(user))
        disputes = list(queries.disputes_to_resolve(user))
        self.stdout.write(
            f"{len(decide)} consequence(s) to apply or waive, {len(disputes)} dispute(s) to resolve"
        )
        for c in decide:
            late = " UNENFORCED" if c.escalated_at else ""
            self.stdout.write(
                f"  consequence #{c.pk} {c.offense.rep.username} {c.offense.week} level {c.level}: "
                f"{c.name}, by {c.deadline}{late}"
            )
        for d in disputes:
            self.stdout.write(f"  dispute #{d.pk} {d.offense.rep.username} {d.offense.week}: {d.reason}")

    def _apply(self, user: Any, options: dict[str, Any]) -> None:
        c = services.apply_consequence(
            user, self._one(user, Consequence, options["id"]), options["note"], options.get("on")
        )
        self.stdout.write(f"consequence #{c.pk} applied on {c.applied_on}: {c.name}")

    def _waive(self, user: Any, options: dict[str, Any]) -> None:
        c = services.waive_consequence(user, self._one(user, Consequence, options["id"]), options["reason"])
        self.stdout.write(f"consequence #{c.pk} waived: {c.name}")

    def _dispute(self, user: Any, options: dict[str, Any]) -> None:
        d = services.dispute_offense(user, self._one(user, Offense, options["id"]), options["reason"])
        self.stdout.write(
            f"dispute #{d.pk} opened; {d.resolver.username if d.resolver else 'an admin'} decides"
        )

    def _resolve(self, user: Any, options: dict[str, Any]) -> None:
        d = services.resolve_dispute(
            user, self._one(user, Dispute, options["id"]), upheld=options["uphold"], note=options["note"]
        )
        self.stdout.write(f"dispute #{d.pk} {d.state}")

    def _fairness(self, user: Any, options: dict[str, Any]) -> None:
        from truepipe.accountability.fairness import audit

        end = options.get("end") or timezone.localdate()
        start = options.get("start") or end - dt.timedelta(days=90)
        under = self._user(options["under"]) if options.get("under") else None
        report = audit(user, start, end, under)
        if options["format"] == "json":
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
            return
        self.stdout.write(f"Fairness audit {start} to {end}: {report.total.offenses} offenses")
        header = f"{'':<22} {'offenses':>8} {'applied':>7} {'waived':>6} {'disputed':>8} {'overturned':>10}"
        header += f" {'pending':>7}"
        for title, groups in (
            ("by tier", report.by_tier),
            ("by manager", report.by_manager),
            ("by rep", report.by_rep),
        ):
            self.stdout.write(f"\n{title}\n{header}")
            for name, c in groups.items():
                if c.offenses:
                    self.stdout.write(
                        f"{name[:22]:<22} {c.offenses:>8} {c.applied:>7} {c.waived:>6} {c.disputed:>8} "
                        f"{c.overturned:>10} {c.pending:>7}"
                    )
        self.stdout.write("")
        for check in report.checks:
            mark = "FLAG " if check.verdict == "flag" else "     "
            self.stdout.write(f"{mark}{check.question} {check.says}")

    def _export(self, user: Any, options: dict[str, Any]) -> None:
        import csv

        audience = options["audience"]
        rows = (
            visible(user, Consequence)
            .filter(state="applied")
            .select_related("offense__rep")
            .order_by("applied_on", "pk")
        )
        if options.get("start"):
            rows = rows.filter(applied_on__gte=options["start"])
        writer = csv.writer(self.stdout)
        writer.writerow(["consequence", "rep", "email", "action", "name", "applied_on", "hold_until", "note"])
        for c in rows:
            if audience not in (c.notify or []):
                continue
            rep = c.offense.rep
            until = c.applied_on + dt.timedelta(days=c.hold_days) if c.applied_on and c.hold_days else ""
            writer.writerow([c.pk, rep.username, rep.email, c.action, c.name, c.applied_on, until, c.note])

    def _acknowledge(self, user: Any, options: dict[str, Any]) -> None:
        if options.get("id") is None:
            ack = services.acknowledge_policy(user)
            self.stdout.write(f"{user.username} acknowledged policy v{ack.version}")
            return
        o = services.acknowledge_offense(user, self._one(user, Offense, options["id"]))
        self.stdout.write(f"offense #{o.pk} ({o.week}) acknowledged")
