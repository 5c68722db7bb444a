"""The accountability page: a rep's offenses (acknowledge, dispute), a manager's consequences to
apply or waive, disputes to resolve, what went unenforced, and who has not read the policy.

Reads come from `accountability.queries` (visibility in one place), every decision goes
through `accountability.services` (permissions, audit). A refused decision re-renders the
page with the message next to the form and the text the person typed still in it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from truepipe.accountability import queries, services
from truepipe.accountability.models import Consequence, Dispute, Offense, OffenseStatus
from truepipe.audit.log import trail
from truepipe.core.errors import InvalidInput, ServiceError
from truepipe.core.visibility import role_of, visible, visible_users
from truepipe.hygiene.policy import current_policy
from truepipe.people.models import Role
from truepipe.web.views.common import refuse

RECENT = 50


def _context(request: HttpRequest, failed: dict[str, Any] | None = None) -> dict[str, Any]:
    user: Any = request.user
    policy = current_policy()
    role = role_of(user)
    own: list[Any] = list(queries.offenses(user).filter(rep=user)[:RECENT])
    team: list[Any] = []
    if role in (Role.MANAGER, Role.ADMIN, Role.EXEC):
        team = list(queries.offenses(user).exclude(rep=user)[:RECENT])
    now = timezone.now()
    window = policy.accountability.dispute_days
    for offense in own + team:
        current = [c for c in offense.consequences.all() if c.replaced_by_id is None]
        offense.current = current[-1] if current else None
        offense.can_dispute = (
            offense.rep_id == user.pk
            and offense.status == OffenseStatus.ACTIVE
            and (now - offense.detected_at).days < window
            and not any(d.state == "open" for d in offense.disputes.all())
            and offense.current is not None
            and offense.current.state in ("pending", "applied")
        )
    level, step = queries.next_step(user, policy)
    return {
        "policy": policy,
        "rules": policy.accountability,
        "own": own,
        "team": team,
        "next_level": level,
        "next_step": step,
        "to_decide": list(queries.to_decide(user)[:RECENT]),
        "disputes": list(queries.disputes_to_resolve(user)[:RECENT]),
        "unenforced": list(queries.unenforced(user).exclude(offense__rep=user)[:RECENT]),
        # How managers below follow through is for those above them, not for their reps.
        "bluffers": queries.reported_managers(user, policy)
        if role in (Role.MANAGER, Role.ADMIN, Role.EXEC)
        else [],
        "unacknowledged": list(queries.unacknowledged(user, policy)[:RECENT])
        if role in (Role.MANAGER, Role.ADMIN)
        else [],
        "acknowledged": queries.acknowledged(user, policy),
        "failed": failed or {},
    }


@login_required
@require_GET
def accountability_page(request: HttpRequest) -> HttpResponse:
    if role_of(request.user) is None:
        return refuse(request, "Your account has no sales profile.", 403)
    return render(request, "web/accountability/page.html", _context(request))


def _apply(user: Any, consequence: Consequence, note: str, _: Any) -> str:
    done = services.apply_consequence(user, consequence, note)
    return f"Applied: {done.name} for {done.offense.rep.get_full_name() or done.offense.rep.username}."


def _waive(user: Any, consequence: Consequence, reason: str, _: Any) -> str:
    done = services.waive_consequence(user, consequence, reason)
    return f"Waived: {done.name}. The waiver and its reason are on the record."


def _acknowledge(user: Any, offense: Offense, _: str, __: Any) -> str:
    services.acknowledge_offense(user, offense)
    return f"Acknowledged the offense of {offense.week}."


def _dispute(user: Any, offense: Offense, reason: str, _: Any) -> str:
    dispute = services.dispute_offense(user, offense, reason)
    who = dispute.resolver.get_full_name() if dispute.resolver else "an admin"
    return f"Disputed. {who} will decide; the consequence waits until then."


def _resolve(user: Any, dispute: Dispute, note: str, post: Any) -> str:
    if post.get("decision") not in ("uphold", "reject"):
        raise InvalidInput("Choose to uphold or to reject the dispute.", fields={"decision": "Required."})
    upheld = post.get("decision") == "uphold"
    services.resolve_dispute(user, dispute, upheld=upheld, note=note)
    if upheld:
        return "Dispute upheld: the offense is overturned, with everything that followed from it."
    return "Dispute rejected: the consequence stands."


# Each decision: the record it is about, the form's id prefix, the text field it reads, the service call.
DECISIONS: dict[str, tuple[type, str, str, Callable[..., str]]] = {
    "consequence-apply": (Consequence, "apply", "note", _apply),
    "consequence-waive": (Consequence, "waive", "reason", _waive),
    "offense-acknowledge": (Offense, "ack", "note", _acknowledge),
    "offense-dispute": (Offense, "dispute", "reason", _dispute),
    "dispute-resolve": (Dispute, "resolve", "note", _resolve),
}


@login_required
@require_POST
def decide(request: HttpRequest, pk: int, decision: str) -> HttpResponse:
    """One decision through its service. Refused: the page again, the message by the form, the
    text still in it. The record must be visible to the person first (else 404)."""
    model, prefix, field, act = DECISIONS[decision]
    record: Any = get_object_or_404(visible(request.user, model), pk=pk)
    text = request.POST.get(field, "")
    try:
        done = act(request.user, record, text, request.POST)
    except ServiceError as exc:
        failed = {"form": f"{prefix}-{pk}", "message": exc.message, "text": text}
        return render(request, "web/accountability/page.html", _context(request, failed), status=exc.status)
    messages.success(request, done)
    return redirect(request.POST.get("next") or reverse("accountability"))


@login_required
@require_GET
def offense_detail(request: HttpRequest, pk: int) -> HttpResponse:
    offense = get_object_or_404(queries.offenses(request.user), pk=pk)
    context = {
        "offense": offense,
        "violations": offense.violations.select_related("opportunity").order_by("-severity", "opened_at"),
        "consequences": offense.consequences.select_related("owner", "escalated_to", "decided_by").order_by(
            "pk"
        ),
        "disputes": offense.disputes.select_related("raised_by", "resolved_by").order_by("raised_at"),
        "trail": trail(offense),
    }
    return render(request, "web/accountability/offense.html", context)


@login_required
@require_POST
def policy_acknowledge(request: HttpRequest) -> HttpResponse:
    try:
        ack = services.acknowledge_policy(request.user)
    except ServiceError as exc:
        return refuse(request, exc)
    messages.success(request, f"You acknowledged policy v{ack.version}.")
    return redirect(request.POST.get("next") or reverse("policy"))


@login_required
@require_GET
def fairness_page(request: HttpRequest) -> HttpResponse:
    """The fairness audit over what the viewer sees: a period, optionally one manager's team."""
    from django.utils.dateparse import parse_date

    from truepipe.accountability.fairness import TIERS, audit
    from truepipe.web.charts import Bar, bar_chart

    user: Any = request.user
    if role_of(user) not in (Role.MANAGER, Role.ADMIN, Role.EXEC):
        return refuse(request, "The fairness audit is for managers, executives and admins.", 403)
    today = timezone.localdate()

    def day(name: str) -> dt.date | None:
        try:
            found = parse_date(request.GET.get(name) or "")
            if found is not None and not dt.date(1900, 1, 1) <= found <= dt.date(9000, 12, 31):
                raise ValueError  # a day the 90-day window around it cannot reach
            return found
        except ValueError:  # well formed but no such day (2026-02-30), or out of range
            messages.error(
                request, f"{name.capitalize()}: no such day, {request.GET[name]!r}; showing the default."
            )
            return None

    end = day("to") or today
    start = day("from") or end - dt.timedelta(days=90)
    if start > end:
        start, end = end, start
    under = None
    if request.GET.get("under"):
        under = visible_users(user).filter(username__iexact=request.GET["under"]).first()
        if under is None:
            messages.error(
                request, f"No one called {request.GET['under']!r} that you can see: showing everyone."
            )
    report = audit(user, start, end, under)
    flagged = {check.group for check in report.flags}

    def bars(groups: dict[str, Any], order: list[str]) -> Any:
        return bar_chart(
            [
                Bar(
                    name,
                    groups[name].waive_rate,
                    f"{groups[name].waived} of {groups[name].decided} waived",
                    name in flagged,
                )
                for name in order
                if name in groups and groups[name].offenses
            ],
            title="Share of decided consequences that were waived",
        )

    managers = sorted(report.by_manager, key=lambda name: -(report.by_manager[name].waive_rate or -1))
    context = {
        "report": report,
        "start": start,
        "end": end,
        "under": under,
        "managers": managers,
        "tier_chart": bars(report.by_tier, list(TIERS)),
        "manager_chart": bars(report.by_manager, managers),
        "reps": [
            (name, c, report.tier_of.get(name, "no quota")) for name, c in sorted(report.by_rep.items())
        ],
    }
    return render(request, "web/accountability/fairness.html", context)
