"""One template, two uses: a full page includes its fragment; an HTMX request gets the fragment alone."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def is_htmx(request: HttpRequest) -> bool:
    """An HTMX request that wants a fragment (a boosted link wants the whole page)."""
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-Boosted") != "true"


def render_page(
    request: HttpRequest,
    page: str,
    fragment: str,
    context: dict[str, Any],
    *,
    status: int = 200,
) -> HttpResponse:
    """Render `fragment` for HTMX requests and `page` (which includes `fragment`) otherwise."""
    return render(request, fragment if is_htmx(request) else page, context, status=status)
