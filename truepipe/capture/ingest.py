"""From captured messages and meetings to activities on the right deal.

Every source (IMAP, the drop-box, files, calendars) turns what it read into `Incoming`
items and hands them to an `Ingest`, which works a batch at a time with a few queries per
batch, never per message:

1. duplicates (the same Message-ID, the same event UID and recurrence) are skipped, or for
   a rescheduled or cancelled event, applied to the activity already logged;
2. participants are split into people of this company (users' addresses, internal domains)
   and customers; internal-only items, a rep's personal domains and private threads are
   ignored, with the reason kept;
3. customers are matched to contacts by address; an unknown address at a known account's
   domain is proposed as a new contact;
4. the deal: the thread's earlier deal; else the one open deal the rep can see at the
   account; several such deals go to the rep's triage list (most recently active first),
   never a silent guess; none leaves the activity on the account;
5. activities are written through the activities service (one write per batch, so the engine
   re-evaluates the touched deals in the same transaction), and the ledger records every
   item's outcome. A batch that fails is retried item by item, so one bad item is rejected
   alone and nothing is stored half.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from truepipe.accounts.models import ContactEmail
from truepipe.activities import services as activity_services
from truepipe.activities.models import ActivityKind, ActivitySource
from truepipe.capture.items import Incoming
from truepipe.capture.models import (
    CaptureAddress,
    CapturedItem,
    ContactProposal,
    ExcludedDomain,
    ItemStatus,
    TouchDomain,
)
from truepipe.core.bulk import checkpoints_beside, no_cyclic_gc
from truepipe.core.errors import ServiceError
from truepipe.core.models import Via
from truepipe.core.permissions import require_assignable
from truepipe.core.visibility import open_deal_owners
from truepipe.pipeline.models import Stage, StageKind

# Public mail services: an address there says nothing about which company a person is from.
FREE_MAIL = frozenset(
    "gmail.com googlemail.com yahoo.com yahoo.co.uk hotmail.com outlook.com live.com msn.com icloud.com "
    "me.com mac.com aol.com gmx.de gmx.net web.de proton.me protonmail.com yandex.ru mail.ru qq.com "
    "163.com 126.com fastmail.com zoho.com".split()
)
# Items per transaction: at most what the engine evaluates as it writes (MAX_CAPTURED_BATCH in
# hygiene.incremental). A large mailbox went in a tenth faster in batches of 10,000 than of 2,000:
# each batch rewrites the pages of the ledger's and the activities' indexes it touches, and a
# batch of 2,000 already touches most of them.
BATCH = 10_000
# The first batch is smaller: the writer starts on it while the helper process (capture.sources)
# parses the rest, instead of waiting for a whole batch (a large mailbox went in 4% faster).
FIRST_BATCH = 3000


@dataclass
class Report:
    counts: Counter = field(default_factory=Counter)  # logged, triage, ignored, rejected, duplicate, updated
    problems: list[tuple[str, str]] = field(default_factory=list)  # (origin, reason) of rejected items
    reasons: Counter = field(default_factory=Counter)  # why items were ignored
    opportunity_ids: set[int] = field(default_factory=set)
    seen: int = 0

    def summary(self) -> str:
        c = self.counts
        parts = [
            f"{self.seen} read",
            f"{c['logged']} logged",
            f"{c['triage']} to triage",
            f"{c['updated']} updated",
            f"{c['ignored']} ignored",
            f"{c['duplicate']} already captured",
            f"{c['rejected']} rejected",
        ]
        return ", ".join(parts) + "."


def select_in(sql: str, values, params: tuple = ()) -> list[tuple]:  # type: ignore[no-untyped-def]
    """Rows of `sql` (its `{in}` a list of placeholders for `values`), in chunks the databases accept.

    Capture's lookups run once per batch over a thousand values; written as plain SQL they cost
    a fraction of building the same IN lists through the ORM.
    """
    values = list(values)
    if not values:
        return []
    if connection.vendor == "postgresql":
        # One array parameter: the driver would otherwise find each of a thousand placeholders.
        with connection.cursor() as cursor:
            cursor.execute(sql.replace("IN ({in})", "= ANY(%s)"), [*params, values])
            return cursor.fetchall()
    sqlite = connection.vendor == "sqlite"
    mark = "?" if sqlite else "%s"
    rows: list[tuple] = []
    connection.ensure_connection()
    cursor = connection.connection.cursor() if sqlite else connection.cursor()
    try:
        for start in range(0, len(values), 900):
            chunk = values[start : start + 900]
            text = sql.replace("{in}", ", ".join([mark] * len(chunk)))
            if sqlite:
                text = text.replace("%s", "?")
            cursor.execute(text, [*params, *chunk])
            rows.extend(cursor.fetchall())
    finally:
        cursor.close()
    return rows


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


class Directory:
    """Who is who, read once per run: users by address, internal and excluded domains."""

    def __init__(self) -> None:
        User = get_user_model()
        self.users: dict[str, int] = {}
        for pk, email in User.objects.filter(is_active=True).exclude(email="").values_list("pk", "email"):
            self.users.setdefault(email.strip().lower(), pk)
        for pk, email in CaptureAddress.objects.filter(user__is_active=True).values_list("user_id", "email"):
            self.users.setdefault(email.lower(), pk)  # a login address is never someone else's alias
        configured = getattr(settings, "TRUEPIPE_INTERNAL_DOMAINS", ()) or ()
        self.internal = {d.strip().lower() for d in configured if d.strip()}
        self.internal |= {domain_of(a) for a in self.users} - FREE_MAIL
        self.excluded: dict[int | None, set[str]] = {}
        self._excluded_for: dict[int | None, frozenset[str]] = {}
        for user_id, domain in ExcludedDomain.objects.values_list("user_id", "domain"):
            self.excluded.setdefault(user_id, set()).add(domain.lower())

    def is_internal(self, address: str) -> bool:
        return address in self.users or domain_of(address) in self.internal

    def excluded_for(self, owner_id: int | None) -> frozenset[str]:
        """The domains this owner's mail is not logged from (everyone's and their own), read once."""
        found = self._excluded_for.get(owner_id)
        if found is None:
            found = self._excluded_for[owner_id] = frozenset(
                self.excluded.get(None, set()) | self.excluded.get(owner_id, set())
            )
        return found


@dataclass
class _Plan:
    """What one item becomes: its ledger row and, when logged, its activity."""

    item: Incoming
    status: str
    reason: str = ""
    owner_id: int | None = None
    opportunity_id: int | None = None
    account_id: int | None = None
    customers: list[str] = field(default_factory=list)  # the customers' addresses
    contacts: list[int] = field(default_factory=list)  # those of them that are contacts
    domains: list[str] = field(default_factory=list)
    candidates: list[int] = field(default_factory=list)


class Ingest:
    """One capture run. `run(items)` may be called several times (files, mailboxes) and reports together."""

    def __init__(self, actor=None, *, batch: int = BATCH, now: dt.datetime | None = None) -> None:
        self.actor = actor
        self.batch = batch
        self.now = now
        self.report = Report()
        self.directory = Directory()
        self._seen: set[str] = set()
        self._thread_deals: dict[str, int] = {}
        self._users: dict[int, Any] = {}
        self._scopes: dict[int, set[int] | None] = {}
        self._proposals: dict[str, tuple[int, int | None, str, dt.datetime | None]] = {}

    # -- the run ---------------------------------------------------------------------------------

    def run(self, items: Iterable[Incoming], progress=None, after_batch=None) -> Report:  # type: ignore[no-untyped-def]
        """`after_batch(chunk)`, if given, runs inside each batch's transaction (a source's read position)."""
        iterator: Iterator[Incoming] = iter(items)
        with no_cyclic_gc(), checkpoints_beside() as checkpointer:
            size = min(self.batch, FIRST_BATCH)
            while chunk := list(islice(iterator, size)):
                size = self.batch
                self.report.seen += len(chunk)
                if after_batch is None:
                    self._chunk(chunk)
                else:
                    with transaction.atomic():
                        self._chunk(chunk)
                        after_batch(chunk)
                if checkpointer is not None:
                    checkpointer.after_commit()
                if progress is not None:
                    progress(len(chunk))
        return self.report

    def _chunk(self, chunk: list[Incoming]) -> None:
        fresh: list[Incoming] = []
        keys = [item.dedup_key for item in chunk]
        known = {
            row["dedup_key"]: row
            for row in (
                dict(zip(("id", "dedup_key", "sequence", "activity_id", "status"), values, strict=True))
                for values in select_in(
                    "SELECT id, dedup_key, sequence, activity_id, status FROM capture_captureditem"
                    " WHERE dedup_key IN ({in})",
                    keys,
                )
            )
        }
        for item in chunk:
            previous = known.get(item.dedup_key)
            if previous is not None and item.kind == ActivityKind.MEETING and not item.rejected:
                self._update_meeting(item, previous)
            elif previous is not None or item.dedup_key in self._seen:
                self.report.counts["duplicate"] += 1
            else:
                self._seen.add(item.dedup_key)
                fresh.append(item)
        if not fresh:
            return
        plans = self._plan(fresh)
        try:
            with transaction.atomic():
                self._store(plans)
        except Exception:  # one bad item must not lose the others: store them one at a time
            for plan in plans:
                try:
                    with transaction.atomic():
                        self._store([plan])
                except Exception as exc:
                    plan.status = ItemStatus.REJECTED
                    plan.reason = f"could not be stored ({type(exc).__name__}: {str(exc)[:150]})"
                    plan.candidates = []
                    with transaction.atomic():
                        self._store([plan])
        for plan in plans:
            if plan.status == ItemStatus.REJECTED:
                self.report.problems.append((plan.item.origin, plan.reason))
            elif plan.status == ItemStatus.IGNORED:
                self.report.reasons[plan.reason] += 1
            self.report.counts[plan.status] += 1

    # -- deciding ----------------------------------------------------------------------------------

    def _plan(self, items: list[Incoming]) -> list[_Plan]:
        directory = self.directory
        plans: list[_Plan] = []
        pending: list[_Plan] = []
        for item in items:
            if item.rejected:
                # Whose it was, when that is known: they see their own rejected mail and why.
                owner = item.owner_id or directory.users.get(item.sender)
                plans.append(_Plan(item, ItemStatus.REJECTED, item.rejected[:255], owner_id=owner))
                continue
            if item.occurred_at is None:
                owner = item.owner_id or directory.users.get(item.sender)
                plans.append(_Plan(item, ItemStatus.REJECTED, "no date", owner_id=owner))
                continue
            internal: list[str] = []
            external: list[str] = []
            for _, address in item.participants:
                (internal if directory.is_internal(address) else external).append(address)
            owner_id = item.owner_id
            if owner_id is None:
                owner_id = directory.users.get(item.sender) or next(
                    (directory.users[a] for a in internal if a in directory.users), None
                )
            plan = _Plan(item, ItemStatus.LOGGED, owner_id=owner_id)
            plans.append(plan)
            if owner_id is None:
                plan.status, plan.reason = ItemStatus.REJECTED, "no truepipe user took part"
            elif item.cancelled:
                plan.status, plan.reason = ItemStatus.IGNORED, "cancelled"
            elif not external:
                plan.status, plan.reason = ItemStatus.IGNORED, "internal only"
            else:
                excluded = directory.excluded_for(owner_id)
                customers = [a for a in external if domain_of(a) not in excluded] if excluded else external
                if not customers:
                    plan.status, plan.reason = ItemStatus.IGNORED, "personal domain (excluded)"
                else:
                    plan.domains = list(dict.fromkeys(domain_of(a) for a in customers))
                    plan.customers = customers
                    pending.append(plan)
        if pending:
            self._match(pending)
        return plans

    def _match(self, plans: list[_Plan]) -> None:
        addresses = {a for plan in plans for a in plan.customers}
        domains = {d for plan in plans for d in plan.domains}
        contacts = {
            email: (contact_id, account_id)
            for email, contact_id, account_id in select_in(
                "SELECT e.email, e.contact_id, c.account_id FROM accounts_contactemail e"
                " JOIN accounts_contact c ON c.id = e.contact_id"
                " WHERE c.deleted_at IS NULL AND e.email IN ({in})",
                addresses,
            )
        }
        domain_accounts = dict(
            select_in(
                "SELECT d.domain, d.account_id FROM accounts_accountdomain d"
                " JOIN accounts_account a ON a.id = d.account_id"
                " WHERE a.deleted_at IS NULL AND d.domain IN ({in})",
                domains,
            )
        )
        # Threads reps marked private: few, so their table is read by thread alone, in plain SQL
        # (the ORM's two IN lists of a batch's owners and threads cost a tenth of the batch).
        private = set(
            select_in(
                "SELECT user_id, thread_key FROM capture_privatethread WHERE thread_key IN ({in})",
                {p.item.thread_key for p in plans},
            )
        )
        self._remember_threads(plans)
        proposals: dict[str, tuple[int, int | None, str, dt.datetime | None]] = {}
        accounts_of: dict[int, set[int]] = {}
        for index, plan in enumerate(plans):
            if (plan.owner_id, plan.item.thread_key) in private:
                plan.status, plan.reason = ItemStatus.IGNORED, "private thread"
                continue
            accounts: set[int] = set()
            ids: list[int] = []
            for address in plan.customers:
                found = contacts.get(address)
                if found is not None:
                    ids.append(found[0])
                    if found[1] is not None:
                        accounts.add(found[1])
                    continue
                account_id = domain_accounts.get(domain_of(address))
                if account_id is not None:
                    accounts.add(account_id)
                    # The name this message gives the address (its last mention of it).
                    name = next((n for n, a in reversed(plan.item.participants) if a == address), "")
                    proposals[address] = (account_id, plan.owner_id, name, plan.item.occurred_at)
            plan.contacts = ids
            accounts_of[index] = accounts
        self._choose_deals(plans, accounts_of)
        self._proposals = proposals

    def _remember_threads(self, plans: list[_Plan]) -> None:
        """The deals earlier messages of these conversations were logged on."""
        known = self._thread_deals  # grows through the run: looked up, never copied
        threads = {p.item.thread_key for p in plans if p.item.thread_key and p.item.thread_key not in known}
        refs = {r for p in plans for r in p.item.references}
        if not threads and not refs:
            return
        base = (
            "SELECT i.thread_key, i.dedup_key, a.opportunity_id, i.captured_at, i.id"
            " FROM capture_captureditem i JOIN activities_activity a ON a.id = i.activity_id"
            " WHERE a.opportunity_id IS NOT NULL AND a.deleted_at IS NULL AND "
        )
        found = select_in(base + "i.thread_key IN ({in})", threads) + select_in(
            base + "i.dedup_key IN ({in})", [f"msg:{r}" for r in refs]
        )
        rows = [row[:3] for row in sorted(set(found), key=lambda row: (row[3], row[4]))]
        for thread_key, dedup_key, opportunity_id in rows:
            self._thread_deals[thread_key] = opportunity_id
            self._thread_deals[dedup_key] = opportunity_id

    def _owner(self, user_id: int):  # type: ignore[no-untyped-def]
        if user_id not in self._users:
            self._load_owners({user_id})
        return self._users[user_id]

    def _load_owners(self, ids: set[int]) -> None:
        missing = ids - set(self._users)
        if missing:
            found = get_user_model().objects.select_related("profile").in_bulk(missing)
            for pk in missing:
                user = found.get(pk)
                self._users[pk] = user
                self._scopes[pk] = open_deal_owners(user) if user is not None else set()

    def _choose_deals(self, plans: list[_Plan], accounts_of: dict[int, set[int]]) -> None:
        """Every plan's deal from one query: the open deals at the batch's accounts and threads.

        Each owner then keeps the deals they may see (`open_deal_owners`), most recently active first.
        """
        indexes = [i for i, p in enumerate(plans) if p.status == ItemStatus.LOGGED and p.owner_id is not None]
        if not indexes:
            return
        self._load_owners({plans[i].owner_id for i in indexes})  # type: ignore[misc]
        accounts = {a for i in indexes for a in accounts_of[i]}
        keys_of = {
            i: [plans[i].item.thread_key, *(f"msg:{r}" for r in reversed(plans[i].item.references))]
            for i in indexes
        }
        threaded = {
            d for keys in keys_of.values() for k in keys if (d := self._thread_deals.get(k)) is not None
        }
        # Two lookups by index (an OR of the two would scan every deal). The open stages are named
        # (read for each batch: a long import sees a stage opened or closed meanwhile): joined to
        # the stages instead, SQLite probed each account once per stage.
        open_stages = Stage.objects.filter(kind=StageKind.OPEN).values_list("pk", flat=True)
        stages = ", ".join(str(int(pk)) for pk in sorted(open_stages)) or "NULL"
        query = (
            "SELECT o.id, o.account_id, o.owner_id, o.updated_at FROM pipeline_opportunity o"
            f" WHERE o.deleted_at IS NULL AND o.stage_id IN ({stages}) AND "
        )
        # A plan looks only at its accounts' deals within its owner's sight: when every sight is a
        # short list (reps: their own deals), only those (account, owner) pairs are wanted. Most
        # of an account's deals are other reps': PostgreSQL looks the pairs up (a quarter of the
        # time of reading every deal at the accounts); SQLite reads the accounts' deals faster
        # than it joins the pairs, and the rows no plan wants are passed over here.
        scopes = [self._scopes[plans[i].owner_id] for i in indexes]  # type: ignore[index]
        sights = [(i, scope) for i, scope in zip(indexes, scopes, strict=True) if scope is not None]
        everyone = len(sights) < len(indexes)  # someone in the batch may see every deal
        wanted: set[tuple[int | None, int]] | None = None
        if not everyone and sum(len(accounts_of[i]) * len(sight) for i, sight in sights) <= 100_000:
            wanted = {(a, o) for i, sight in sights for a in accounts_of[i] for o in sight}
        if wanted is not None and connection.vendor == "postgresql":
            pairs = list(wanted)
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT o.id, o.account_id, o.owner_id, o.updated_at"
                    " FROM unnest(%s::bigint[], %s::bigint[]) AS w(a, b)"
                    " JOIN pipeline_opportunity o ON o.account_id = w.a AND o.owner_id = w.b"
                    f" WHERE o.deleted_at IS NULL AND o.stage_id IN ({stages})",
                    [[a for a, _ in pairs], [o for _, o in pairs]],
                )
                found = cursor.fetchall()
        else:
            owners = sorted(set().union(*(sight for _, sight in sights)))
            if not everyone and len(owners) <= 2000:  # a short list of owners narrows it
                query += f"o.owner_id IN ({', '.join(str(int(pk)) for pk in owners) or 'NULL'}) AND "
            found = select_in(query + "o.account_id IN ({in})", accounts)
        found += select_in(query + "o.id IN ({in})", threaded)
        # Most recently active first, for a plan with several candidates (sorting every deal of
        # the batch instead took as long as the lookup).
        recency: dict[int, tuple[Any, int]] = {}
        by_account: dict[int | None, list[tuple[int, int]]] = {}
        deal_account: dict[int, tuple[int | None, int]] = {}
        for pk, account_id, owner_id, updated_at in found:
            if pk in deal_account:
                continue  # the two lookups may overlap
            if wanted is not None and (account_id, owner_id) not in wanted and pk not in threaded:
                continue
            by_account.setdefault(account_id, []).append((pk, owner_id))
            deal_account[pk] = (account_id, owner_id)
            recency[pk] = (updated_at, pk)
        for i in indexes:
            plan = plans[i]
            scope = self._scopes[plan.owner_id]  # type: ignore[index]
            thread_deal = next(
                (
                    d
                    for k in keys_of[i]
                    if (d := self._thread_deals.get(k)) is not None
                    and d in deal_account
                    and (scope is None or deal_account[d][1] in scope)
                ),
                None,
            )
            here = accounts_of[i]
            if thread_deal is not None:
                plan.opportunity_id = thread_deal
                plan.account_id = deal_account[thread_deal][0]
            else:
                candidates = [
                    pk
                    for a in here
                    for pk, owner_id in by_account.get(a, ())
                    if scope is None or owner_id in scope
                ]
                if len(candidates) > 1:
                    candidates.sort(key=recency.__getitem__, reverse=True)
                if len(candidates) == 1:
                    plan.opportunity_id = candidates[0]
                    plan.account_id = deal_account[candidates[0]][0]
                elif candidates:
                    plan.status, plan.reason = ItemStatus.TRIAGE, "several open deals"
                    plan.candidates = candidates[:10]
                if plan.account_id is None and len(here) == 1:
                    plan.account_id = next(iter(here))
            if plan.opportunity_id is not None:
                if plan.item.thread_key:
                    self._thread_deals[plan.item.thread_key] = plan.opportunity_id
                self._thread_deals[plan.item.dedup_key] = plan.opportunity_id

    # -- storing -----------------------------------------------------------------------------------

    def _store(self, plans: list[_Plan]) -> None:
        from truepipe.pipeline.services import insert_rows

        logged = [p for p in plans if p.status in (ItemStatus.LOGGED, ItemStatus.TRIAGE)]
        for owner_id in {p.owner_id for p in logged}:
            require_assignable(self.actor, self._owner(owner_id) if owner_id is not None else None)
        rows = [
            {
                "kind": p.item.kind,
                "occurred_at": p.item.occurred_at,
                "subject": p.item.subject,
                "body": p.item.body,
                "source": ActivitySource.CALENDAR
                if p.item.kind == ActivityKind.MEETING
                else ActivitySource.EMAIL,
                "owner": p.owner_id,
                "opportunity": p.opportunity_id,
                "account": p.account_id,
            }
            for p in logged
        ]
        meetings = bool(logged) and logged[0].item.kind == ActivityKind.MEETING
        ids = activity_services.log_captured(
            self.actor,
            rows,
            [p.contacts for p in logged],
            via=Via.CALENDAR if meetings else Via.EMAIL,
            logged_at=self.now,
        )
        activity_of = {id(p): pk for p, pk in zip(logged, ids, strict=True)}
        now = self.now or timezone.now()
        insert_rows(
            CapturedItem,
            [
                {
                    "dedup_key": p.item.dedup_key,
                    "kind": p.item.kind,
                    "source": p.item.source,
                    "status": p.status,
                    "reason": p.reason,
                    "owner": p.owner_id,
                    "activity": activity_of.get(id(p)),
                    "thread_key": p.item.thread_key[:255],
                    "subject": p.item.subject[:255],
                    "sender": p.item.sender[:254],
                    "occurred_at": p.item.occurred_at,
                    "captured_at": now,
                    "origin": p.item.origin[:255],
                    "size": p.item.size,
                    "attachments": p.item.attachments,
                    "sequence": p.item.sequence,
                    "candidates": p.candidates,
                    "decided_by": None,
                    "decided_at": None,
                }
                for p in plans
            ],
            returning=False,
        )
        touches = [
            {
                "activity": activity_of[id(p)],
                "owner": p.owner_id,
                "domain": d,
                "occurred_at": p.item.occurred_at,
            }
            for p in logged
            for d in p.domains
        ]
        insert_rows(TouchDomain, touches, returning=False)
        self.report.opportunity_ids.update(p.opportunity_id for p in logged if p.opportunity_id)
        self._store_proposals(now)

    def _store_proposals(self, now: dt.datetime) -> None:
        proposals = self._proposals
        if not proposals:
            return
        self._proposals = {}
        known = set(ContactProposal.objects.filter(email__in=proposals).values_list("email", flat=True))
        if known:
            ContactProposal.objects.filter(email__in=known).update(
                times_seen=F("times_seen") + 1, last_seen=now
            )
        # An address that became a contact meanwhile is not proposed again.
        taken = set(
            ContactEmail.objects.filter(email__in=set(proposals) - known).values_list("email", flat=True)
        )
        ContactProposal.objects.bulk_create(
            [
                ContactProposal(
                    email=email,
                    account_id=account_id,
                    proposed_to_id=owner_id,
                    display_name=name[:200],
                    first_seen=when or now,
                    last_seen=when or now,
                )
                for email, (account_id, owner_id, name, when) in proposals.items()
                if email not in known and email not in taken
            ],
            ignore_conflicts=True,
        )

    # -- meetings that changed -----------------------------------------------------------------------

    def _update_meeting(self, item: Incoming, previous: dict[str, Any]) -> None:
        """A later SEQUENCE of an event already captured: rescheduled, renamed or cancelled."""
        if item.sequence <= previous["sequence"] and not (
            item.cancelled and previous["status"] != ItemStatus.IGNORED
        ):
            self.report.counts["duplicate"] += 1
            return
        activity_id = previous["activity_id"]
        with transaction.atomic():
            if activity_id is not None:
                try:
                    if item.cancelled:
                        activity_services.delete_activity(self.actor, activity_id, via=Via.CALENDAR)
                    else:
                        changes: dict[str, Any] = {"subject": item.subject or "(no title)"}
                        if item.occurred_at is not None:
                            changes["occurred_at"] = item.occurred_at
                        activity_services.update_activity(self.actor, activity_id, changes, via=Via.CALENDAR)
                except ServiceError as exc:
                    self.report.problems.append((item.origin, f"could not update the meeting: {exc}"))
                    self.report.counts["rejected"] += 1
                    return
            status = {"status": ItemStatus.IGNORED, "reason": "cancelled"} if item.cancelled else {}
            CapturedItem.objects.filter(pk=previous["id"]).update(
                sequence=item.sequence,
                subject=item.subject[:255],
                occurred_at=item.occurred_at,
                **status,
            )
        self.report.counts["cancelled" if item.cancelled else "updated"] += 1
