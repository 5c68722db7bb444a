"""Presentation helpers: money, people, stage badges, logging lag, sortable headers."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django import template
from django.contrib.humanize.templatetags.humanize import intcomma
from django.utils.html import format_html

register = template.Library()


@register.filter
def money(amount: Any, currency: str = "") -> str:
    """48000 -> '48,000'; cents only when there are any; '—' when unknown."""
    if amount is None or amount == "":
        return "—"
    value = Decimal(amount)
    text = intcomma(f"{value:.0f}") if value == value.to_integral() else intcomma(f"{value:.2f}")
    return f"{currency} {text}".strip()


@register.filter
def person(user: Any) -> str:
    if not user:
        return "—"
    return user.get_full_name() or user.username


@register.simple_tag
def stage_badge(stage: Any) -> str:
    return format_html('<span class="badge badge-{}">{}</span>', stage.kind, stage.name)


@register.filter
def logging_lag(activity: Any) -> str:
    """'logged 9 days later' when the touch reached the CRM more than a day after it happened."""
    lag = activity.logged_at - activity.occurred_at
    if lag <= timedelta(days=1):
        return ""
    days = lag.days
    return f"logged {days} day{'s' if days != 1 else ''} later"


@register.simple_tag(takes_context=True)
def sort_link(context: Any, key: str, label: str) -> str:
    """A column header that sorts by `key`, toggling the direction when already sorted by it."""
    current = context.get("sort", "")
    query = context.get("query", "")
    if current == key:
        new, arrow = f"-{key}", " ▲"
    elif current == f"-{key}":
        new, arrow = key, " ▼"
    else:
        new, arrow = key, ""
    href = f"?{query}&sort={new}" if query else f"?sort={new}"
    return format_html('<a class="sort" href="{}">{}{}</a>', href, label, arrow)


@register.simple_tag(takes_context=True)
def page_link(context: Any, number: int) -> str:
    parts = [p for p in (context.get("query", ""), f"sort={context.get('sort', '')}") if p]
    return "?" + "&".join([*parts, f"page={number}"])
