"""/update/: one-line updates. Type a line, see what it changes on which deal, confirm.

GET  /update/?line=…               the page; an HTMX request (typing, debounced) gets the preview alone
POST /update/ preview=1, line, choice.<key>=…   the preview again, with the questions answered so far
POST /update/ line, choice.<key>=…, version     apply (oneline.services, via "oneline"); the answer is
                                                the box again, empty, with what was done

The box is also included at the top of Today (`compact`).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from truepipe.core import visibility
from truepipe.core.errors import ServiceError
from truepipe.oneline import services
from truepipe.web.htmx import is_htmx

CHOICE = "choice."


def _choices(data: QueryDict) -> dict[str, str]:
    return {key[len(CHOICE) :]: data.get(key, "") for key in data if key.startswith(CHOICE) and data.get(key)}


def _preview_context(user: Any, line: str, choices: dict[str, str]) -> dict[str, Any]:
    """The preview of `line`, or the reason there is none, for the templates."""
    if not line.strip():
        return {"preview": None, "error": ""}
    try:
        preview = services.preview(user, line, choices)
    except ServiceError as exc:
        return {"preview": None, "error": exc.message}
    asked = {question.key for question in preview.questions}
    return {
        "preview": preview,
        "error": "",
        # Answers already given ride along as hidden fields so Confirm sends them back.
        "answered": {key: value for key, value in preview.proposal.choices.items() if key not in asked},
    }


@login_required
@require_http_methods(["GET", "POST"])
def one_line(request: HttpRequest) -> HttpResponse:
    user = request.user
    if not visibility.can_create(user):
        return render(
            request,
            "web/refused.html",
            {"message": "Your role can read deals but not update them."},
            status=403,
        )
    data = request.POST if request.method == "POST" else request.GET
    line = data.get("line", "")[:2000]
    compact = data.get("compact") == "1"
    choices = _choices(data)
    if request.method == "POST" and data.get("preview") != "1":
        return _apply(request, line, choices, compact)
    context = {"line": line, "compact": compact, **_preview_context(user, line, choices)}
    if is_htmx(request):
        return render(request, "web/oneline/_preview.html", context)
    return render(request, "web/oneline/page.html", context)


def _apply(request: HttpRequest, line: str, choices: dict[str, str], compact: bool) -> HttpResponse:
    user = request.user
    version_text = request.POST.get("version", "")
    version = int(version_text) if version_text.isdigit() else None
    try:
        applied = services.apply(user, line, choices, via=services.VIA_ONELINE, version=version)
    except ServiceError as exc:
        context = {"line": line, "compact": compact, **_preview_context(user, line, choices)}
        context["error"] = exc.message
        template = "web/oneline/_box.html" if is_htmx(request) else "web/oneline/page.html"
        return render(request, template, context, status=exc.status)
    if is_htmx(request):
        context = {"line": "", "compact": compact, "notice": applied.message, "done": applied.deal}
        return render(request, "web/oneline/_box.html", context)
    messages.success(request, applied.message)
    return redirect("one-line")
