"""Presentation of discipline scores: a score, its tone (good/fair/poor) and its change."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.html import format_html

from truepipe.web import charts

register = template.Library()


@register.filter
def tone(value: Any) -> str:
    """good (90+), fair (70+), poor, or none: a CSS class suffix."""
    return charts.tone(None if value is None or value == "" else float(value))


@register.filter
def score(value: Any) -> str:
    """72.5 -> '72.5'; no score -> '—'."""
    if value is None or value == "":
        return "—"
    return f"{float(value):.1f}"


@register.simple_tag
def delta(value: Any) -> str:
    """The change against the previous period: ▲ +3.2 (better), ▼ -4.0 (worse), ±0, or — (no comparison)."""
    if value is None or value == "":
        return format_html('<span class="delta none" title="{}">—</span>', "No score in the previous period")
    number = float(value)
    if number > 0:
        return format_html(
            '<span class="delta up" title="{}">▲ +{}</span>', "Better than the period before", f"{number:.1f}"
        )
    if number < 0:
        return format_html(
            '<span class="delta down" title="{}">▼ {}</span>', "Worse than the period before", f"{number:.1f}"
        )
    return format_html('<span class="delta flat" title="{}">±0</span>', "Same as the period before")
