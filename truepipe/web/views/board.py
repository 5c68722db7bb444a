"""The pipeline board: a column per stage, cards dragged between them (via=board)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import Count, F, Q, Sum, Window
from django.db.models.functions import RowNumber
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from truepipe.core import visibility
from truepipe.core.errors import ConcurrencyConflict, ServiceError, StageRequirementsMissing
from truepipe.core.models import Via
from truepipe.pipeline import services
from truepipe.pipeline.models import Opportunity, Stage, StageKind
from truepipe.web.forms import StageFieldsForm, apply_service_error
from truepipe.web.htmx import is_htmx

# A column shows this many cards; its totals always count every deal in it.
CARDS_PER_COLUMN = 60
# Won and lost columns hold the deals closed this recently (the board is about what is moving now).
CLOSED_WINDOW = timedelta(days=90)


def board_context(user: Any, owner_id: str | None = None) -> dict[str, Any]:
    """Columns with their cards and totals, in three queries whatever the number of deals."""
    stages = list(Stage.objects.filter(is_active=True))
    recently = timezone.now() - CLOSED_WINDOW
    deals = visibility.visible(user, Opportunity).filter(
        Q(stage__kind=StageKind.OPEN) | Q(closed_at__gte=recently)
    )
    if owner_id and owner_id.isdigit():
        deals = deals.filter(owner_id=int(owner_id))
    totals: dict[int, dict[str, Any]] = {
        row["stage_id"]: dict(row)
        for row in deals.values("stage_id").annotate(count=Count("id"), amount=Sum("amount")).order_by()
    }
    ranked = deals.annotate(
        rank=Window(
            RowNumber(),
            partition_by=[F("stage_id")],
            order_by=[F("close_date").asc(nulls_last=True), F("id").asc()],
        )
    )
    cards = list(ranked.filter(rank__lte=CARDS_PER_COLUMN).select_related("account", "owner"))
    by_stage: dict[int, list[Opportunity]] = {stage.pk: [] for stage in stages}
    for card in cards:
        by_stage.setdefault(card.stage_id, []).append(card)
    columns = []
    for stage in stages:
        total: dict[str, Any] = totals.get(stage.pk, {})
        count = total.get("count", 0)
        columns.append(
            {
                "stage": stage,
                "cards": by_stage.get(stage.pk, []),
                "count": count,
                "amount": total.get("amount") or Decimal(0),
                "more": max(0, count - CARDS_PER_COLUMN),
                "closed": stage.kind != StageKind.OPEN,
            }
        )
    owners = visibility.visible_users(user).order_by("first_name")[:300]
    return {
        "columns": columns,
        "owners": owners,
        "owner_id": owner_id or "",
        "can_move": visibility.can_create(user),
        "closed_days": CLOSED_WINDOW.days,
    }


@login_required
@require_GET
def board(request: HttpRequest) -> HttpResponse:
    context = board_context(request.user, request.GET.get("owner"))
    template = "web/board/_board.html" if is_htmx(request) else "web/board/board.html"
    return render(request, template, context)


def _board_response(
    request: HttpRequest, *, notice: str = "", error: str = "", status: int = 200
) -> HttpResponse:
    context = board_context(request.user, request.POST.get("owner_filter") or None)
    context.update(notice=notice, error=error)
    if is_htmx(request):
        response = render(request, "web/board/_board.html", context, status=status)
        response["HX-Retarget"] = "#board"
        response["HX-Reswap"] = "outerHTML"
        return response
    if status < 400 and not error:
        return redirect("board")
    return render(request, "web/board/board.html", context, status=status)


def _ask_for_fields(
    request: HttpRequest, form: StageFieldsForm, stage: Stage, deal: Opportunity, status: int
):
    context = {"form": form, "stage": stage, "deal": deal}
    if is_htmx(request):
        response = render(request, "web/board/_ask_fields.html", context, status=status)
        response["HX-Retarget"] = "#modal"
        response["HX-Reswap"] = "innerHTML"
        return response
    context.update(board_context(request.user))
    context["ask"] = True
    return render(request, "web/board/board.html", context, status=status)


@login_required
@require_POST
def move(request: HttpRequest) -> HttpResponse:
    """A card dropped on a stage. Missing stage fields come back as a small form; nothing is saved."""
    user = request.user
    opp_id, stage_id = request.POST.get("opportunity", ""), request.POST.get("stage", "")
    if not (opp_id.isdigit() and stage_id.isdigit()):
        return _board_response(request, error="Choose a deal and a stage.", status=400)
    deal = get_object_or_404(visibility.visible(user, Opportunity).select_related("stage"), pk=int(opp_id))
    stage = get_object_or_404(Stage, pk=int(stage_id), is_active=True)
    asked = [name for name in request.POST.get("asked", "").split(",") if name in services.WRITABLE_FIELDS]
    form = StageFieldsForm(request.POST, user=user, asked=asked)
    if not form.is_valid():
        return _ask_for_fields(request, form, stage, deal, status=400)
    version = form.cleaned_data.get("version")
    try:
        services.move_to_stage(user, deal, stage, via=Via.BOARD, extra=form.extra(), expected_version=version)
    except StageRequirementsMissing as exc:
        wanted = list(dict.fromkeys([*asked, *exc.missing]))
        if asked:
            # They filled some fields and the stage still wants more: keep what they typed.
            fresh = StageFieldsForm(request.POST, user=user, asked=wanted)
            fresh.is_valid()
            apply_service_error(fresh, exc)
        else:
            initial = {"opportunity": deal.pk, "stage": stage.pk, "version": version}
            fresh = StageFieldsForm(initial=initial, user=user, asked=wanted)
        return _ask_for_fields(request, fresh, stage, deal, status=exc.status)
    except ConcurrencyConflict as exc:
        return _board_response(request, error=exc.message, status=exc.status)
    except ServiceError as exc:
        if asked:
            apply_service_error(form, exc)
            return _ask_for_fields(request, form, stage, deal, status=exc.status)
        return _board_response(request, error=exc.message, status=exc.status)
    return _board_response(request, notice=f"“{deal.name}” moved to {stage.name}.")
