"""The shadow pipeline: customers a rep keeps e-mailing and meeting with no deal in truepipe.

Capture records, for every captured message or meeting, the outside domains it touched
(`TouchDomain`). A rep with `suggest_touches` (3) or more touches at one company's domain in
the rule's window (30 days) and no deal there is asked "create the deal?" on the shadow
pipeline page; from `touches` (5) the `unlogged_deal` rule holds it against them. Both
thresholds are the `unlogged_deal` rule's parameters in the hygiene policy.

A rep answers a suggestion with:
- *Create the deal* (the new-deal form, at the domain's account; one is created from the
  domain when none exists);
- *Not a customer* (personal mail, a supplier): the domain is excluded from capture for the
  rep (`capture.ExcludedDomain`), so it is neither suggested nor counted by the rule again.
  A known account's domain cannot be excluded this way: it is a customer;
- *Not now*: the suggestion is hidden until new touches reach the threshold again. The rule
  does not listen to this one: past its threshold the violation stands until a deal exists.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from truepipe.accounts.models import AccountDomain
from truepipe.accounts.services import normalise_domain
from truepipe.audit import log as audit
from truepipe.capture.ingest import FREE_MAIL
from truepipe.capture.models import ExcludedDomain
from truepipe.core.errors import InvalidInput, NotAllowed
from truepipe.core.visibility import assignable_owners, open_deal_owners


@dataclass(frozen=True)
class ShadowRow:
    """One suggestion: a rep, an outside domain they keep touching, and what is known of it."""

    rep_id: int
    rep_name: str
    domain: str
    account_id: int | None
    account_name: str | None
    touches: int
    first_touch: dt.datetime | None
    last_touch: dt.datetime | None
    subjects: list[str] = field(default_factory=list)
    # Past the rule's threshold: an open unlogged_deal violation counts against the rep.
    flagged: bool = False


def thresholds(policy: Any = None) -> dict[str, Any]:
    """The unlogged_deal rule's parameters in the policy (its defaults when switched off)."""
    from truepipe.hygiene.policy import current_policy
    from truepipe.hygiene.rules.capture import UnloggedDeal

    rule = (policy or current_policy()).rule(UnloggedDeal.key)
    return dict(rule.params if rule is not None else UnloggedDeal.default_params)


def _owners_filter(user: Any) -> str | None:
    """Whose touches the user may see (those whose open deals they see), as an `AND ...` over
    `td`; None: nobody's (delivery reads won deals only, not the reps' mail)."""
    owners = open_deal_owners(user)
    if owners is None:
        return ""
    if not owners:
        return None
    return f" AND td.owner_id IN ({', '.join(str(int(pk)) for pk in sorted(owners))})"


def shadow_pipeline(user: Any, *, now: dt.datetime | None = None) -> list[ShadowRow]:
    """The suggestions the user may see (a rep's own, a manager's subtree, everyone's for admin
    and exec; delivery none), most touched first. One query."""
    from truepipe.hygiene.engine import EvalContext
    from truepipe.hygiene.policy import current_policy
    from truepipe.hygiene.rules.base import as_datetime, rows
    from truepipe.hygiene.rules.capture import (
        LIVE_DEALS,
        SAMPLE_SUBJECTS,
        UnloggedDeal,
        shadow_groups_sql,
        shadow_key_sql,
    )

    owners = _owners_filter(user)
    if owners is None:
        return []
    policy = current_policy()
    params = thresholds(policy)
    ctx = EvalContext(as_of=now or timezone.now(), policy=policy)
    start = ctx.as_of - dt.timedelta(days=float(params["window_days"]))
    # A "not now" hides the touches up to it: the suggestion comes back with new ones.
    dismissed = (
        " AND NOT EXISTS (SELECT 1 FROM contracts_shadowdismissal d WHERE d.user_id = td.owner_id"
        " AND d.domain = td.domain AND d.dismissed_at >= td.occurred_at)"
    )
    groups = shadow_groups_sql(
        ctx,
        start=start,
        minimum=max(1, int(params["suggest_touches"])),
        deals=LIVE_DEALS,
        touch_filter=owners + dismissed,
    )
    subjects = ", ".join(f"g.s{n}" for n in range(1, SAMPLE_SUBJECTS + 1))
    sql = f"""
        SELECT g.owner_id, u.first_name, u.last_name, u.username, g.domain, g.account_id,
               g.account_name, g.touches, g.first_touch, g.last_touch, {subjects},
               CASE WHEN EXISTS (
                   SELECT 1 FROM hygiene_violation v
                   WHERE v.live AND v.status = 'open' AND v.rule = '{UnloggedDeal.key}'
                     AND v.key = {shadow_key_sql(ctx, "g.owner_id", "g.domain")}) THEN 1 ELSE 0 END
        FROM ({groups}) g
        JOIN {get_user_model()._meta.db_table} u ON u.id = g.owner_id
        ORDER BY g.touches DESC, g.last_touch DESC, g.domain, g.owner_id"""
    result = []
    for row in rows(ctx, sql):
        owner_id, first, last, username, domain, account_id, account_name, touches = row[:8]
        first_touch, last_touch = row[8], row[9]
        sample = [s for s in row[10 : 10 + SAMPLE_SUBJECTS] if s]
        result.append(
            ShadowRow(
                rep_id=int(owner_id),
                rep_name=f"{first} {last}".strip() or username,
                domain=domain,
                account_id=account_id,
                account_name=account_name,
                touches=int(touches),
                first_touch=as_datetime(first_touch),
                last_touch=as_datetime(last_touch),
                subjects=sample,
                flagged=bool(row[-1]),
            )
        )
    return result


# ---------------------------------------------------------------- answering a suggestion


def _may_answer_for(actor: Any, rep: Any) -> bool:
    """The rep themself, a manager above them, or an admin: whoever may give the rep records."""
    return assignable_owners(actor).filter(pk=rep.pk).exists()


def _clean_domain(domain: str) -> str:
    try:
        return normalise_domain(domain)
    except InvalidInput:
        raise InvalidInput(f"{domain!r} is not a domain.", fields={"domain": "Not a domain."}) from None


def exclude_domain(actor: Any, rep: Any, domain: str, *, note: str = "") -> ExcludedDomain:
    """*Not a customer*: the rep's mail with this domain is no longer captured, suggested or
    counted by the unlogged_deal rule (its live violation resolves at the next evaluation).

    Refused for a known account's domain (that is a customer: "not now" instead) and for a
    public mail service (never counted anyway). Recorded in the audit log, so a manager can see
    what a rep excluded.
    """
    if not _may_answer_for(actor, rep):
        raise NotAllowed("Only the rep, their manager or an admin can answer this suggestion.")
    domain = _clean_domain(domain)
    if domain in FREE_MAIL:
        raise InvalidInput(f"{domain} is a public mail service; it never counts as a customer.")
    account = AccountDomain.objects.filter(domain=domain).select_related("account").first()
    if account is not None and account.account.deleted_at is None:
        raise InvalidInput(
            f"{domain} is the domain of the account “{account.account}”: a customer. "
            "Create the deal, or dismiss the suggestion for now.",
            fields={"domain": "A known account's domain."},
        )
    from truepipe.contracts.models import DismissalReason, ShadowDismissal

    with transaction.atomic():
        excluded, _ = ExcludedDomain.objects.get_or_create(user=rep, domain=domain)
        ShadowDismissal.objects.update_or_create(
            user=rep,
            domain=domain,
            defaults={
                "reason": DismissalReason.NOT_CUSTOMER,
                "note": note[:255],
                "dismissed_at": timezone.now(),
                "dismissed_by": actor,
            },
        )
        audit.record(
            actor, "capture.domain_excluded", excluded, {"rep": rep.pk, "domain": domain, "note": note}
        )
    return excluded


def dismiss_suggestion(actor: Any, rep: Any, domain: str, *, note: str = "") -> Any:
    """*Not now*: hide the suggestion until new touches reach the threshold again. The
    unlogged_deal rule still counts every touch (a rep cannot silence it this way)."""
    if not _may_answer_for(actor, rep):
        raise NotAllowed("Only the rep, their manager or an admin can answer this suggestion.")
    domain = _clean_domain(domain)
    from truepipe.contracts.models import DismissalReason, ShadowDismissal

    with transaction.atomic():
        dismissal, _ = ShadowDismissal.objects.update_or_create(
            user=rep,
            domain=domain,
            defaults={
                "reason": DismissalReason.NOT_NOW,
                "note": note[:255],
                "dismissed_at": timezone.now(),
                "dismissed_by": actor,
            },
        )
        audit.record(actor, "capture.suggestion_dismissed", dismissal, {"rep": rep.pk, "domain": domain})
    return dismissal


def account_name_for(domain: str) -> str:
    """A name for a new account made from a domain: "newco-labs.example" -> "Newco Labs"."""
    label = domain.split(".")[0] if "." in domain else domain
    return " ".join(part.capitalize() for part in label.replace("_", "-").split("-") if part) or domain


def account_for_deal(actor: Any, domain: str) -> Any:
    """*Create the deal*: the account the new deal goes to, the domain's own, or one created for
    it (named from the domain, owned by the actor) when truepipe does not know the company yet."""
    from truepipe.accounts.models import Account
    from truepipe.accounts.services import create_account
    from truepipe.core.models import Via
    from truepipe.core.visibility import visible

    domain = _clean_domain(domain)
    known = Account.objects.filter(domains__domain=domain, deleted_at__isnull=True).order_by("pk").first()
    if known is not None:
        if not visible(actor, Account).filter(pk=known.pk).exists():
            raise NotAllowed(f"{domain} belongs to an account you cannot see: ask its owner or your manager.")
        return known
    return create_account(actor, name=account_name_for(domain), domains=[domain], via=Via.FORM)
