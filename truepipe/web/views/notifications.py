"""Your notifications (newest first, unread marked) and how you want them by e-mail."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from truepipe.notify.models import EmailMode, Notification, NotificationSetting
from truepipe.web.views.common import paginate


class SettingForm(forms.Form):
    email = forms.ChoiceField(choices=EmailMode.choices, widget=forms.RadioSelect, label="E-mail me")


@login_required
@require_http_methods(["GET", "POST"])
def notifications_page(request: HttpRequest) -> HttpResponse:
    user: Any = request.user
    setting = NotificationSetting.objects.filter(user=user).first()
    form = SettingForm(initial={"email": setting.email if setting else EmailMode.IMMEDIATE})
    if request.method == "POST":
        if request.POST.get("action") == "read":
            done = Notification.objects.filter(user=user, read_at__isnull=True).update(read_at=timezone.now())
            messages.success(request, f"Marked {done} as read.")
            return redirect("notifications")
        form = SettingForm(request.POST)
        if form.is_valid():
            NotificationSetting.objects.update_or_create(
                user=user, defaults={"email": form.cleaned_data["email"]}
            )
            messages.success(request, "Saved: " + EmailMode(form.cleaned_data["email"]).label.lower() + ".")
            return redirect("notifications")
    page = paginate(request, Notification.objects.filter(user=user).order_by("-created_at", "-pk"))
    return render(
        request, "web/notifications.html", {"page": page, "form": form}, status=400 if form.errors else 200
    )
