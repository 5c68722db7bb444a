"""Contracts: who sees them, which won deal each belongs to, who answers for an unlogged win.

- **Matching.** A contract's customer resolves to an account (by name, case-insensitive; by one
  of its domains; or by the account's external id from an import). It then matches a won deal
  at that account, in the same currency, whose close date is within `match_days` (45) of the
  signature and whose amount is within `match_percent` (10%) of the contract's, and which no
  other contract has taken. Several candidates: the closest, by the sum of the date gap over
  `match_days` and the amount gap over the tolerance. Both numbers are the `unlogged_win` rule's
  parameters, so the rule (SQL, `hygiene.rules.capture`) and `match` (here) agree.
- **Accountable rep** of an unmatched contract: the account's owner; else the rep with the most
  captured touches at the customer's domains in the last 90 days; else nobody (the import says
  so and the admins are told instead). A matched contract's rep is the deal's owner.
- **At import**, every new unmatched contract is announced at once (`announce`) to the rep,
  their manager and delivery, and the `unlogged_win` rule is evaluated alone (`evaluate_wins`).
- **After every evaluation** (`rematch`, on the engine's after-evaluation hook) unmatched
  contracts are matched again: a won deal logged since links to its contract, and the rule,
  which applies the same test, has resolved the violation in that evaluation.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils import timezone

from truepipe.accounts.models import Account, AccountDomain
from truepipe.accounts.services import normalise_domain
from truepipe.capture.models import TouchDomain
from truepipe.contracts.models import Contract
from truepipe.core.errors import InvalidInput
from truepipe.core.models import ExternalId
from truepipe.core.visibility import role_of
from truepipe.hygiene.engine import EvalContext, after_evaluation, reconcile_in_sql
from truepipe.hygiene.models import EvaluationRun
from truepipe.hygiene.policy import Policy, current_policy
from truepipe.hygiene.rules.capture import LIVE_DEALS, UnloggedWin
from truepipe.notify.send import notify
from truepipe.people.models import Role
from truepipe.pipeline.models import Opportunity, StageKind

EVENT = "contract.unlogged_win"
TOUCH_DAYS = 90  # how far back captured touches make someone the accountable rep


# ---------------------------------------------------------------- who sees what


def may_see_contracts_page(user: Any) -> bool:
    return role_of(user) in (Role.ADMIN, Role.EXEC, Role.MANAGER, Role.DELIVERY)


# ---------------------------------------------------------------- matching


@dataclass(frozen=True)
class MatchRules:
    days: int
    percent: Decimal


def match_rules(policy: Policy | None = None) -> MatchRules:
    """The unlogged_win rule's tolerances in the policy (its defaults when switched off)."""
    rule = (policy or current_policy()).rule(UnloggedWin.key)
    params = rule.params if rule is not None else UnloggedWin.default_params
    return MatchRules(int(params["match_days"]), Decimal(str(params["match_percent"])))


def domain_in(text: str) -> str | None:
    """The domain a customer cell names ("newco.example", "https://www.newco.example",
    "ap@newco.example", "NewCo (newco.example)"), or None for a company name alone."""
    text = (text or "").strip()
    if "." not in text:
        return None
    # The cell itself, or a domain written beside the name ("Northwind (northwind.example)").
    for token in [text, *re.split(r"[\s()<>\[\],;]+", text)]:
        if token and " " not in token and "." in token.strip("."):
            try:
                return normalise_domain(token)
            except InvalidInput:
                continue
    return None


def resolve_accounts(customers: Iterable[str]) -> dict[str, Account]:
    """{customer text: account} for the customers that name one: by name (case-insensitive), else
    by a domain, else by an account's external id. Three queries for any number of customers."""
    texts = {c.strip() for c in customers if c and c.strip()}
    if not texts:
        return {}
    live = Account.objects.filter(deleted_at__isnull=True)
    by_name: dict[str, Account] = {}
    lowered = {t.lower() for t in texts}
    for named in live.annotate(lname=Lower("name")).filter(lname__in=lowered).order_by("pk"):
        by_name.setdefault(named.name.lower(), named)  # two of one name: the oldest
    domains = {t: d for t in texts if (d := domain_in(t))}
    by_domain = {
        row.domain: row.account
        for row in AccountDomain.objects.filter(
            domain__in=set(domains.values()), account__deleted_at__isnull=True
        ).select_related("account")
    }
    external = dict(
        ExternalId.objects.filter(kind="account", value__in=texts).values_list("value", "object_id")
    )
    by_external = live.in_bulk(set(external.values())) if external else {}
    found: dict[str, Account] = {}
    for text in texts:
        account = (
            by_name.get(text.lower())
            or (by_domain.get(domains[text]) if text in domains else None)
            or (by_external.get(external[text]) if text in external else None)
        )
        if account is not None:
            found[text] = account
    return found


def _score(contract: Contract, deal: Opportunity, rules: MatchRules) -> float | None:
    """How far the deal is from the contract (0: same day, same amount), None if out of bounds."""
    if deal.amount is None or deal.close_date is None or deal.currency != contract.currency:
        return None
    days = abs((deal.close_date - contract.signed_on).days)
    gap = abs(deal.amount - contract.amount)
    if days > rules.days or gap * 100 > contract.amount * rules.percent:
        return None
    tolerance = contract.amount * rules.percent / 100
    amount_part = float(gap / tolerance) if tolerance else 0.0
    return days / max(rules.days, 1) + amount_part


def match(
    contracts: Iterable[Contract], rules: MatchRules, *, now: dt.datetime | None = None
) -> list[Contract]:
    """Link each unmatched contract to its won deal where there is one; returns those linked (saved).

    One query for the candidate deals; contracts are taken in signature order and a deal goes to
    one contract only (also not to one another contract already holds).
    """
    pending = [c for c in contracts if c.opportunity_id is None and c.account_id is not None]
    if not pending:
        return []
    now = now or timezone.now()
    earliest = min(c.signed_on for c in pending) - dt.timedelta(days=rules.days)
    latest = max(c.signed_on for c in pending) + dt.timedelta(days=rules.days)
    deals: dict[int, list[Opportunity]] = {}
    for deal in (
        Opportunity.objects.filter(
            account_id__in={c.account_id for c in pending},
            deleted_at__isnull=True,
            stage__kind=StageKind.WON,
            close_date__range=(earliest, latest),
            amount__isnull=False,
            contract__isnull=True,
        )
        .select_related("owner")
        .order_by("pk")
    ):
        deals.setdefault(deal.account_id, []).append(deal)  # type: ignore[arg-type]
    taken: set[int] = set()
    linked = []
    for contract in sorted(pending, key=lambda c: (c.signed_on, c.pk or 0)):
        scored = [
            (score, deal.pk, deal)
            for deal in deals.get(contract.account_id, [])  # type: ignore[arg-type]
            if deal.pk not in taken and (score := _score(contract, deal, rules)) is not None
        ]
        if not scored:
            continue
        _, _, deal = min(scored, key=lambda item: (item[0], item[1]))
        taken.add(deal.pk)
        contract.opportunity = deal
        contract.matched_at = now
        contract.rep = deal.owner
        contract.rep_basis = "deal owner"
        days = (deal.close_date - contract.signed_on).days  # type: ignore[operator]
        off = (deal.amount - contract.amount) * 100 / contract.amount if contract.amount else Decimal(0)  # type: ignore[operator]
        contract.match_note = (
            f"Won deal “{deal.name}” (#{deal.pk}), closed {deal.close_date}: "
            f"{abs(days)} day{'s' if abs(days) != 1 else ''} {'after' if days >= 0 else 'before'} "
            f"the signature, amount {off:+.1f}%"
        )[:255]
        contract.save(update_fields=["opportunity", "matched_at", "rep", "rep_basis", "match_note"])
        linked.append(contract)
    return linked


# ---------------------------------------------------------------- the accountable rep


def _domains_of(contracts: list[Contract]) -> dict[int, set[str]]:
    """{contract pk: its customer's domains}: the account's, and the customer cell if it is one."""
    account_domains: dict[int, set[str]] = {}
    for account_id, domain in AccountDomain.objects.filter(
        account_id__in={c.account_id for c in contracts if c.account_id}
    ).values_list("account_id", "domain"):
        account_domains.setdefault(account_id, set()).add(domain)
    out = {}
    for c in contracts:
        domains = set(account_domains.get(c.account_id, set())) if c.account_id else set()
        if own := domain_in(c.customer):
            domains.add(own)
        out[c.pk] = domains
    return out


def assign_reps(contracts: list[Contract], *, now: dt.datetime | None = None) -> None:
    """Set each unmatched contract's accountable rep and why (saved): the account's active owner,
    else the active person with the most captured touches at its domains in the last 90 days."""
    now = now or timezone.now()
    todo = [c for c in contracts if c.opportunity_id is None]
    if not todo:
        return
    owners = dict(
        Account.objects.filter(
            pk__in={c.account_id for c in todo if c.account_id}, owner__is_active=True
        ).values_list("pk", "owner_id")
    )
    domains = _domains_of(todo)
    wanted = set().union(*domains.values()) if domains else set()
    touches: dict[str, Counter[int]] = {}
    if wanted:
        rows = (
            TouchDomain.objects.filter(
                domain__in=wanted,
                occurred_at__gt=now - dt.timedelta(days=TOUCH_DAYS),
                occurred_at__lte=now,
                activity__deleted_at__isnull=True,
                owner__is_active=True,
            )
            .values_list("domain", "owner_id", "activity_id")
            .distinct()
        )
        for domain, owner_id, _activity in rows:
            touches.setdefault(domain, Counter())[owner_id] += 1
    for contract in todo:
        rep_id, basis = owners.get(contract.account_id) if contract.account_id else None, "account owner"
        if rep_id is None:
            counted: Counter[int] = Counter()
            for domain in domains.get(contract.pk, ()):
                counted.update(touches.get(domain, Counter()))
            if counted:
                # Most touches; a tie goes to the longest-standing person (lowest id), never at random.
                rep_id, count = min(counted.items(), key=lambda item: (-item[1], item[0]))
                basis = f"most touches ({count} in {TOUCH_DAYS} days)"
            else:
                basis = ""
        if (contract.rep_id, contract.rep_basis) != (rep_id, basis):
            contract.rep_id, contract.rep_basis = rep_id, basis
            contract.save(update_fields=["rep", "rep_basis"])


# ---------------------------------------------------------------- telling people


def _name(user: Any) -> str:
    return user.get_full_name() or user.username


def _money(amount: Decimal) -> str:
    return f"{amount:,.2f}".removesuffix(".00")


def announce(contracts: Iterable[Contract], *, now: dt.datetime | None = None) -> list[Contract]:
    """Tell, at once, about each unmatched contract not yet announced: its rep, the rep's manager
    and every active delivery person (the admins instead of a rep and manager when nobody is
    accountable), in the app and by e-mail per their setting, with a link to the account; and
    every webhook that wants `contract.unlogged_win`. Call inside the import's transaction."""
    User = get_user_model()
    todo = [c for c in contracts if c.opportunity_id is None and c.notified_at is None]
    if not todo:
        return []
    now = now or timezone.now()
    delivery = list(User.objects.filter(is_active=True, profile__role=Role.DELIVERY).order_by("pk"))
    admins: list[Any] = []
    if any(c.rep_id is None for c in todo):
        admins = list(
            User.objects.filter(is_active=True)
            .filter(Q(is_superuser=True) | Q(profile__role=Role.ADMIN))
            .order_by("pk")
        )
    reps = User.objects.select_related("profile__manager").in_bulk({c.rep_id for c in todo if c.rep_id})
    accounts = Account.objects.in_bulk({c.account_id for c in todo if c.account_id})
    contracts_page = reverse("contracts")
    for contract in todo:
        rep = reps.get(contract.rep_id) if contract.rep_id else None
        account = accounts.get(contract.account_id) if contract.account_id else None
        manager = getattr(getattr(rep, "profile", None), "manager", None) if rep else None
        people = [rep, manager] if rep is not None else list(admins)
        people += delivery
        recipients = {p.pk: p for p in people if p is not None and p.is_active}
        amount = f"{_money(contract.amount)} {contract.currency}"
        title = f"Unlogged win: {contract.customer} signed {amount}"
        who = (
            f"Accountable: {_name(rep)} ({contract.rep_basis})."
            if rep
            else "Nobody is accountable for this customer in truepipe: an admin must assign it."
        )
        reference = f", reference {contract.reference}" if contract.reference else ""
        body = (
            f"Signed {contract.signed_on.isoformat()}{reference}. No won deal in truepipe matches it. {who} "
            f"{'Log the won deal; ' if rep else ''}delivery: plan the staffing now. "
            f"All contracts: {settings.TRUEPIPE_BASE_URL}{contracts_page}"
        )
        url = reverse("account", args=[account.pk]) if account else contracts_page
        data = {
            "contract": contract.pk,
            "customer": contract.customer,
            "account": {"id": account.pk, "name": account.name} if account else None,
            "amount": str(contract.amount),
            "currency": contract.currency,
            "signed_on": contract.signed_on.isoformat(),
            "reference": contract.reference,
            "rep": {"id": rep.pk, "username": rep.username, "name": _name(rep)} if rep else None,
            "accountable": contract.rep_basis,
            "notified": sorted(recipients),
        }
        notify(recipients.values(), EVENT, title, body, url, data)
        contract.notified_at = now
        contract.save(update_fields=["notified_at"])
    return todo


# ---------------------------------------------------------------- the engine


def evaluate_wins(policy: Policy | None = None, *, as_of: dt.datetime | None = None) -> tuple[int, int]:
    """Evaluate the unlogged_win rule alone, now (the import's "at once"): (opened, closed).

    The rule reads deals as of the moment from the engine's state; as of now that is the deals
    as they are, so this reads them directly instead of materialising every deal's history.
    """
    policy = policy or current_policy()
    rule = policy.rule(UnloggedWin.key)
    if rule is None:
        return 0, 0
    ctx = EvalContext(as_of=as_of or timezone.now(), policy=policy, state=LIVE_DEALS)
    return reconcile_in_sql(ctx, rule)


def rematch(policy: Policy | None = None, *, now: dt.datetime | None = None) -> list[Contract]:
    """Match the unmatched contracts again (a won deal logged since, an account created since) and
    let go of matches whose deal was deleted or is no longer won. Returns the contracts linked."""
    now = now or timezone.now()
    broken = list(
        Contract.objects.filter(opportunity__isnull=False).filter(
            Q(opportunity__deleted_at__isnull=False) | ~Q(opportunity__stage__kind=StageKind.WON)
        )
    )
    for contract in broken:
        contract.match_note = f"Deal #{contract.opportunity_id} is no longer a won deal."
        contract.opportunity, contract.matched_at = None, None
        contract.save(update_fields=["opportunity", "matched_at", "match_note"])
    unmatched = list(Contract.objects.filter(opportunity__isnull=True).order_by("signed_on", "pk"))
    if not unmatched:
        return []
    orphans = [c for c in unmatched if c.account_id is None]
    if orphans:
        accounts = resolve_accounts(c.customer for c in orphans)
        for contract in orphans:
            account = accounts.get(contract.customer.strip())
            if account is not None:
                contract.account = account
                contract.save(update_fields=["account"])
    linked = match(unmatched, match_rules(policy), now=now)
    assign_reps([c for c in unmatched if c.opportunity_id is None], now=now)
    return linked


@after_evaluation
def after_run(run: EvaluationRun, policy: Policy) -> None:
    rematch(policy, now=run.as_of)  # as of the evaluation's moment (a back-filled day, or now)
