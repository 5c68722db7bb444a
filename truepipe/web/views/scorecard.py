"""The discipline scorecard pages: the team's scores and trends, one rep's score and violations, waiving.

Whom each page shows comes from `core.visibility`: a rep sees themself (and
their team's average when the team is big enough not to give a colleague away),
a manager their reporting subtree, exec and admin everybody, delivery nobody.
The numbers come from `hygiene.scoring` (the same as `truepipe scorecard`);
waiving goes through `hygiene.services`. Each page costs a fixed number of
queries whatever the number of people or violations.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Case, Count, IntegerField, QuerySet, Value, When
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.views.decorators.http import require_GET, require_POST

from truepipe.core import visibility
from truepipe.core.errors import ServiceError
from truepipe.hygiene import scoring
from truepipe.hygiene.management.commands.scorecard import PERIODS
from truepipe.hygiene.models import RepScore, Severity, Violation, ViolationStatus
from truepipe.hygiene.policy import Policy, current_policy
from truepipe.hygiene.policy_file import RuleLine, rule_lines
from truepipe.hygiene.services import can_waive, waive_violation
from truepipe.people.models import Role, SalesProfile
from truepipe.pipeline.models import Opportunity
from truepipe.web import charts
from truepipe.web.forms import DateInput
from truepipe.web.htmx import is_htmx, render_page
from truepipe.web.views.common import VIA_LABELS, paginate, refuse

PERIOD_CHOICES = [
    ("7", "Last 7 days"),
    ("30", "Last 30 days"),
    ("90", "Last 90 days"),
    ("week", "Week (7 days)"),
    ("month", "Month (30 days)"),
]
SORTS = [
    ("line", "Reporting line"),
    ("score", "Lowest score first"),
    ("change", "Biggest drop first"),
    ("violations", "Most open violations"),
    ("name", "Name"),
]
PEOPLE_PER_PAGE = 100
VIOLATIONS_PER_PAGE = 50
# More people than this and the team chart draws one line per team instead of one per person.
CHART_LINES = 8
# A rep sees their team's average only when it mixes the scores of at least this many people
# (themself included):
# with two, the average and their own score would give the colleague's away.
MIN_TEAM_FOR_AVERAGE = 3
NOT_FOR_YOUR_ROLE = (
    "Discipline scores are for the sales team and its managers; your role does not include them."
)
RESOLVED_VIA = {**VIA_LABELS, "evaluation": "the evaluation", "policy": "a policy change"}


def _refused(request: HttpRequest) -> HttpResponse | None:
    role = visibility.role_of(request.user)
    if role is None or role == Role.DELIVERY:
        return refuse(request, NOT_FOR_YOUR_ROLE, 403)
    return None


def _people_in_view(user: Any) -> QuerySet:
    """The people whose scores `user` may see (callers have refused delivery and profile-less users)."""
    return visibility.visible_users(user)


# ---------------------------------------------------------------- filters


class PeriodForm(forms.Form):
    period = forms.ChoiceField(choices=PERIOD_CHOICES, required=False, label="Period")
    as_of = forms.DateField(required=False, label="As of", widget=DateInput())

    def window(self) -> tuple[str, int, dt.date]:
        """(period key, days, last day): the valid choices, the defaults for anything else."""
        if self.is_bound:
            self.is_valid()
        data = getattr(self, "cleaned_data", {})
        key = data.get("period") or "7"
        return key, PERIODS[key], data.get("as_of") or timezone.localdate()


class ScorecardForm(PeriodForm):
    team = forms.TypedChoiceField(coerce=int, required=False, empty_value=None, label="Team")
    sort = forms.ChoiceField(choices=SORTS, required=False, label="Order")

    def __init__(self, *args: Any, teams: list[tuple[int, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["team"].choices = [("", "Everyone I can see"), *teams]  # type: ignore[attr-defined]


class RepFilterForm(PeriodForm):
    status = forms.ChoiceField(
        choices=[("", "Any status"), *ViolationStatus.choices], required=False, label="Status"
    )
    rule = forms.ChoiceField(required=False, label="Rule")

    def __init__(self, *args: Any, rules: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["rule"].choices = [("", "Any rule"), *rules]  # type: ignore[attr-defined]


def _with_defaults(request: HttpRequest, **defaults: str) -> Any:
    """The query string with the defaults filled in, so the filter form always shows what is shown."""
    data = request.GET.copy()
    for name, value in defaults.items():
        if not data.get(name):
            data[name] = value
    return data


def _query(**params: Any) -> str:
    return urlencode({k: v for k, v in params.items() if v not in (None, "")})


# ---------------------------------------------------------------- the scorecard


@dataclass
class Summary:
    score: float | None
    previous: float | None
    open_violations: int
    people: int

    @property
    def change(self) -> float | None:
        if self.score is None or self.previous is None:
            return None
        return round(self.score - self.previous, 1)


def _mean(values: Iterable[float | None]) -> float | None:
    """The mean to one decimal, halves rounded up (as `scoring` rounds team scores)."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    mean = Decimal(str(sum(present) / len(present)))
    return float(mean.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def daily_mean(rows: Iterable[scoring.ScoreRow]) -> list[charts.Point]:
    """The mean of the rows' daily scores, day by day (the team line of a chart)."""
    by_day: dict[dt.date, list[float]] = defaultdict(list)
    for row in rows:
        for day, score in row.trend:
            by_day[day].append(score)
    return [(day, round(sum(scores) / len(scores), 1)) for day, scores in sorted(by_day.items())]


def members(team: scoring.ScoreRow, rows: Iterable[scoring.ScoreRow]) -> list[scoring.ScoreRow]:
    """The people below a team's manager on the reporting line (as `scoring` rolls them up)."""
    return [row for row in rows if row.path.startswith(team.path) and row.user_id != team.user_id]


def _depth(path: str) -> int:
    return path.strip("/").count("/")


def _sorted(rows: list[scoring.ScoreRow], key: str) -> list[scoring.ScoreRow]:
    if key == "score":
        return sorted(rows, key=lambda r: (r.score is None, r.score or 0, r.name))
    if key == "change":
        return sorted(rows, key=lambda r: (r.change is None, r.change or 0, r.name))
    if key == "violations":
        return sorted(rows, key=lambda r: (-r.open_violations, -r.high, r.name))
    if key == "name":
        return sorted(rows, key=lambda r: r.name.lower())
    return rows  # the reporting line: scoring returns them by path


def _team_choices(user: Any) -> tuple[list[tuple[int, str]], dict[int, str]]:
    """The teams (managers) a viewer may narrow the scorecard to, indented along the reporting line."""
    if visibility.role_of(user) == Role.REP:
        return [], {}
    managers = (
        SalesProfile.objects.filter(role=Role.MANAGER, user__is_active=True, user__in=_people_in_view(user))
        .select_related("user")
        .only("path", "user__username", "user__first_name", "user__last_name")
        .order_by("path")
    )
    rows = list(managers)
    top = min((_depth(p.path) for p in rows), default=0)
    choices = [
        (p.user_id, "\u2003" * (_depth(p.path) - top) + (p.user.get_full_name() or p.user.username))
        for p in rows
    ]
    return choices, {p.user_id: p.path for p in rows}


def _chart_series(
    people: list[scoring.ScoreRow], teams: list[scoring.ScoreRow], average: scoring.ScoreRow | None
) -> list[charts.Series]:
    """One line per person while they fit, else one per team; the scope's average as a dashed line."""
    if len(people) <= CHART_LINES:
        series = [charts.Series(row.name, row.trend) for row in people]
        if average is not None:
            series.append(charts.Series(f"{average.name} average", average.trend, dashed=True))
        return series
    chosen = sorted(teams, key=lambda t: (_depth(t.path), t.path))[:CHART_LINES]
    return [charts.Series(team.name, daily_mean(members(team, people))) for team in chosen]


@login_required
@require_GET
def scorecard_page(request: HttpRequest) -> HttpResponse:
    refused = _refused(request)
    if refused:
        return refused
    user: Any = request.user
    role = visibility.role_of(user)
    teams, team_paths = _team_choices(user)
    today = timezone.localdate().isoformat()
    form = ScorecardForm(_with_defaults(request, period="7", as_of=today, sort="line"), teams=teams)
    period, days, as_of = form.window()
    data = getattr(form, "cleaned_data", {})
    team_id = data.get("team")
    sort = data.get("sort") or "line"
    previous_start, start, end = scoring.period_bounds(as_of, days)

    average: scoring.ScoreRow | None = None
    if role == Role.REP:
        people_qs = scoring.scored_people().filter(user=user)
        rows = scoring.scorecard(people_qs, as_of, days, with_trend=True, teams=False)
        average = _team_average(user, as_of, days)
    else:
        path = team_paths.get(team_id) if team_id else None
        if path is None and role == Role.MANAGER:
            path = user.profile.path or f"/{user.pk}/"
        people_qs = scoring.scored_people(path).filter(user__in=_people_in_view(user))
        rows = scoring.scorecard(people_qs, as_of, days, with_trend=True, under_path=path)
    people = [row for row in rows if not row.is_team]
    team_rows = [row for row in rows if row.is_team]
    if average is None and team_rows:
        top = min(team_rows, key=lambda t: (_depth(t.path), t.path))
        average = replace(top, trend=daily_mean(members(top, people)))
    summary = Summary(
        score=_mean(row.score for row in people),
        previous=_mean(row.previous for row in people),
        open_violations=sum(row.open_violations for row in people),
        people=len(people),
    )
    titles = {line.key: line.title for line in rule_lines(current_policy())}
    for row in people:
        row.worst_title = titles.get(row.worst_rule, row.worst_rule)  # type: ignore[attr-defined]
    top_depth = min((_depth(t.path) for t in team_rows), default=0)
    for team in team_rows:
        team.indent = min(_depth(team.path) - top_depth, 4)  # type: ignore[attr-defined]
    ordered = _sorted(people, sort)
    page = Paginator(ordered, PEOPLE_PER_PAGE).get_page(request.GET.get("page"))
    for row in page.object_list:
        row.spark = charts.sparkline(row.trend, start, end, label=row.name)  # type: ignore[attr-defined]
    chart = charts.line_chart(
        _chart_series(people, team_rows, average),
        start,
        end,
        title=f"Daily discipline score, {start:%b %d} to {end:%b %d, %Y}",
    )
    keep = _query(period=period, as_of=as_of.isoformat())
    context = {
        "form": form,
        "period": period,
        "days": days,
        "as_of": as_of,
        "start": start,
        "end": end,
        "previous_start": previous_start,
        "summary": summary,
        "people": page.object_list,
        "page": page,
        "teams": team_rows,
        "average": average if role == Role.REP else None,
        "chart": chart,
        "is_rep": role == Role.REP,
        "keep": keep,
        "query": _query(period=period, as_of=as_of.isoformat(), team=team_id, sort=sort),
        "sort": "",
    }
    return render_page(request, "web/scorecard/page.html", "web/scorecard/_body.html", context)


def _team_average(user: Any, as_of: dt.date, days: int) -> scoring.ScoreRow | None:
    """A rep's team (their manager's subtree) as one anonymous average, when it is big enough."""
    parts = [part for part in (user.profile.path or "").strip("/").split("/") if part]
    if len(parts) < 2:
        return None
    parent = "/" + "/".join(parts[:-1]) + "/"
    manager_id = int(parts[-2])
    rows = scoring.scorecard(scoring.scored_people(parent), as_of, days, with_trend=True, under_path=parent)
    team = next((row for row in rows if row.is_team and row.user_id == manager_id), None)
    if team is None:
        return None
    mates = members(team, [row for row in rows if not row.is_team])
    if len([mate for mate in mates if mate.score is not None]) < MIN_TEAM_FOR_AVERAGE:
        return None
    team.trend = daily_mean(mates)
    team.name = "Your team"
    return team


# ---------------------------------------------------------------- one rep

EVIDENCE_LABELS = {
    "clock": "Clock",
    "last": "Last time",
    "since_creation": "Never since it was created",
    "days": "Days",
    "limit_days": "Limit (days)",
    "cycle_limit_days": "Limit from the rep's own cycle (days)",
    "stage": "Stage",
    "close_date": "Close date",
    "days_overdue": "Days overdue",
    "problem": "Problem",
    "next_step": "Next step",
    "next_step_date": "Next step date",
    "missing": "Missing",
    "required": "The stage requires",
    "opportunity_id": "Deal",
    "occurred_at": "Happened at",
    "logged_at": "Logged at",
    "lag_hours": "Logged after (hours)",
    "limit_hours": "Limit (hours)",
    "window_days": "Window (days)",
    "day": "Day",
    "cutoff": "Cut-off",
    "cutoff_at": "Cut-off at",
    "time_zone": "Time zone",
    "open_deals": "Open deals",
    "from_stage": "From stage",
    "to_stage": "To stage",
    "changed_at": "Changed at",
    "period_days": "Period (days)",
    "skipped": "Stages skipped",
    "max_skipped": "Most allowed",
    "pushes": "Times pushed",
    "days_pushed": "Days pushed",
    "history": "Pushes",
    "limit_times": "Limit (times)",
    "old_amount": "Amount before",
    "new_amount": "Amount after",
    "percent": "Change (%)",
    "close_date_then": "Close date then",
    "days_to_close": "Days to close",
    "limit_percent": "Limit (%)",
    "reasons": "Why",
    "days_in_crm": "Days in the CRM",
    "activities_before_close": "Activities before close",
    "jumped_from_stage": "Jumped from stage",
    "created_at": "Created at",
    "closed_at": "Closed at",
    "min_days": "At least (days)",
    "min_activities": "At least (activities)",
}


# A machine word in evidence (a field name, a reason code): shown with spaces.
CODE = re.compile(r"[a-z]+(?:_[a-z]+)+")


def _when(text: str) -> str | None:
    """An ISO date or date-time from evidence as a person reads it (local time), else None."""
    if len(text) == 10:
        day = parse_date(text)
        return f"{day:%b %d, %Y}" if day else None
    try:
        moment = parse_datetime(text)
    except ValueError:
        return None
    if moment is None:
        return None
    if timezone.is_aware(moment):
        moment = timezone.localtime(moment)
    return f"{moment:%b %d, %Y %H:%M}"


def evidence_value(value: Any) -> str:
    """One evidence value as plain text (the template escapes it)."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        if value[:1].isdigit():
            return _when(value) or value
        return value.replace("_", " ") if CODE.fullmatch(value) else value
    if isinstance(value, list):
        joiner = "; " if any(isinstance(item, dict | list) for item in value) else ", "
        return joiner.join(evidence_value(item) for item in value) or "—"
    if isinstance(value, dict):
        if {"from", "to"} <= set(value):
            moved = f"{evidence_value(value['from'])} → {evidence_value(value['to'])}"
            return f"{moved} on {evidence_value(value['on'])}" if value.get("on") else moved
        return ", ".join(f"{key.replace('_', ' ')}: {evidence_value(item)}" for key, item in value.items())
    return str(value)


def evidence_items(evidence: Any) -> list[tuple[str, str]]:
    """The evidence JSON as (label, value) lines, in the order the rule wrote them; `as_of` is shown apart."""
    if not isinstance(evidence, dict):
        return [("Evidence", evidence_value(evidence))] if evidence else []
    return [
        (EVIDENCE_LABELS.get(key, str(key).replace("_", " ").capitalize()), evidence_value(value))
        for key, value in evidence.items()
        if key != "as_of"
    ]


@dataclass
class ViolationView:
    """A violation with what the page says about it."""

    violation: Violation
    title: str
    explanation: str
    evidence: list[tuple[str, str]]
    evidence_as_of: str | None
    cost: float
    subject: str
    subject_url: str | None
    resolved_via: str
    can_waive: bool
    error: str = ""
    reason: str = ""
    flash: str = ""
    tone: str = field(default="")

    def __post_init__(self) -> None:
        self.tone = {3: "high", 2: "medium", 1: "low"}.get(self.violation.severity, "low")


def violation_views(
    user: Any, violations: list[Violation], policy: Policy, lines: dict[str, RuleLine]
) -> list[ViolationView]:
    """Explain each violation: its rule, evidence, cost and subject (a fixed number of queries)."""
    if not violations:
        return []
    costs = scoring.violation_costs(violations, policy)
    deal_ids = {v.opportunity_id for v in violations if v.opportunity_id}
    deal_ids |= {v.activity.opportunity_id for v in violations if v.activity and v.activity.opportunity_id}
    shown = set(
        visibility.visible(user, Opportunity).filter(pk__in=deal_ids).values_list("pk", flat=True)
        if deal_ids
        else []
    )
    views = []
    for v in violations:
        line = lines.get(v.rule)
        subject, url = _subject(v, shown)
        as_of = v.evidence.get("as_of") if isinstance(v.evidence, dict) else None
        views.append(
            ViolationView(
                violation=v,
                title=line.title if line else v.rule.replace("_", " ").capitalize(),
                explanation=line.explanation if line else "",
                evidence=evidence_items(v.evidence),
                evidence_as_of=_when(as_of) if isinstance(as_of, str) else None,
                cost=costs.get(v.pk, 0.0),
                subject=subject,
                subject_url=url,
                resolved_via=RESOLVED_VIA.get(v.resolved_via, v.resolved_via),
                can_waive=v.status == ViolationStatus.OPEN and can_waive(user, v),
            )
        )
    return views


def _subject(v: Violation, shown: set[int]) -> tuple[str, str | None]:
    """What failed, as a label and (when the viewer may open it) a link."""
    if v.opportunity is not None:
        if v.opportunity.pk in shown:
            return f"Deal: {v.opportunity.name}", reverse("opportunity", args=[v.opportunity.pk])
        return "A deal you cannot see", None
    if v.activity is not None:
        label = f"{v.activity.get_kind_display()}: {v.activity.subject}"
        deal = v.activity.opportunity_id
        return label, reverse("opportunity", args=[deal]) if deal in shown else None
    if v.day:
        return f"Day: {v.day:%a %b %d, %Y}", None
    return "", None


def _violations(target_id: int) -> QuerySet[Violation]:
    return (
        Violation.objects.filter(rep_id=target_id)
        .select_related("opportunity", "activity", "resolved_by", "waived_by", "rep__profile")
        .order_by(
            Case(
                When(status=ViolationStatus.OPEN, then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            ),
            "-opened_at",
            "-id",
        )
    )


def _rule_lines(policy: Policy) -> dict[str, RuleLine]:
    return {line.key: line for line in rule_lines(policy)}


@login_required
@require_GET
def rep_scorecard(request: HttpRequest, rep_id: int) -> HttpResponse:
    refused = _refused(request)
    if refused:
        return refused
    user: Any = request.user
    target = get_object_or_404(
        _people_in_view(user).select_related("profile", "profile__manager", "profile__team"), pk=rep_id
    )
    policy = current_policy()
    lines = _rule_lines(policy)
    form = RepFilterForm(
        _with_defaults(request, period="7", as_of=timezone.localdate().isoformat()),
        rules=sorted(((k, line.title) for k, line in lines.items()), key=lambda c: c[1]),
    )
    period, days, as_of = form.window()
    data = getattr(form, "cleaned_data", {})
    previous_start, start, end = scoring.period_bounds(as_of, days)
    rows = scoring.scorecard(
        SalesProfile.objects.filter(user_id=target.pk), as_of, days, with_trend=True, teams=False
    )
    row = rows[0] if rows else None
    worst = lines.get(row.worst_rule) if row and row.worst_rule else None
    day_score = RepScore.objects.filter(rep=target, day__lte=as_of).order_by("-day").first()
    counts = {
        status: n
        for status, n in Violation.objects.filter(rep=target)
        .order_by()
        .values_list("status")
        .annotate(n=Count("id"))
    }
    qs = _violations(target.pk)
    status, rule = data.get("status") or "", data.get("rule") or ""
    if status:
        qs = qs.filter(status=status)
    if rule:
        qs = qs.filter(rule=rule)
    page = paginate(request, qs, VIOLATIONS_PER_PAGE)
    items = violation_views(user, list(page.object_list), policy, lines)
    name = target.get_full_name() or target.username
    keep = _query(period=period, as_of=as_of.isoformat())
    context = {
        "target": target,
        "name": name,
        "profile": target.profile,
        "form": form,
        "row": row,
        "worst": worst.title if worst else (row.worst_rule if row else ""),
        "day_score": day_score,
        "period": period,
        "days": days,
        "as_of": as_of,
        "start": start,
        "end": end,
        "previous_start": previous_start,
        "chart": charts.line_chart(
            [charts.Series(name, row.trend if row else [])],
            start,
            end,
            title=f"{name}: daily discipline score, {start:%b %d} to {end:%b %d, %Y}",
        ),
        "items": items,
        "page": page,
        "counts": counts,
        "total": sum(counts.values()),
        "statuses": [(value, label, counts.get(value, 0)) for value, label in ViolationStatus.choices],
        "status": status,
        "rule": rule,
        "keep": keep,
        "query": _query(period=period, as_of=as_of.isoformat(), status=status, rule=rule),
        "sort": "",
        "severities": Severity,
    }
    return render(request, "web/scorecard/rep.html", context)


@login_required
@require_POST
def violation_waive(request: HttpRequest, pk: int) -> HttpResponse:
    """Waive one open violation with a reason; HTMX gets the violation's card back, errors inline."""
    refused = _refused(request)
    if refused:
        return refused
    user: Any = request.user
    violation = get_object_or_404(
        Violation.objects.select_related("rep__profile").filter(rep__in=_people_in_view(user)),
        pk=pk,
    )
    reason = request.POST.get("reason", "")
    back = reverse("rep-scorecard", args=[violation.rep_id]) + f"#violation-{violation.pk}"
    status, error, flash = 200, "", ""
    try:
        waive_violation(user, violation, reason)
    except ServiceError as exc:
        status, error = exc.status, exc.fields.get("reason") or exc.message
        if not is_htmx(request):
            messages.error(request, exc.message)
            return redirect(back)
    else:
        flash = "Waived. It no longer counts against the score."
        if not is_htmx(request):
            messages.success(request, flash)
            return redirect(back)
    fresh = _violations(violation.rep_id).get(pk=violation.pk)
    [item] = violation_views(user, [fresh], current_policy(), _rule_lines(current_policy()))
    item.error, item.flash = error, flash
    item.reason = reason if error else ""
    return render(request, "web/scorecard/_violation.html", {"item": item}, status=status)
