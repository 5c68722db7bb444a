"""The hygiene policy page: everyone signed in reads the rules; admins edit, upload and download them."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from truepipe.core.errors import InvalidInput, ServiceError
from truepipe.core.visibility import role_of
from truepipe.hygiene.models import Severity
from truepipe.hygiene.policy import current_policy, publish_policy
from truepipe.hygiene.policy_file import export_text, history, parse_text, rule_lines
from truepipe.people.models import Role
from truepipe.web.views.common import refuse

SECTIONS = ("scoring", "snooze", "queue", "accountability")
MAX_UPLOAD = 256 * 1024


class PolicyForm(forms.Form):
    """One row per rule (enabled, severity, parameters as JSON), the other settings as JSON, a note."""

    def __init__(self, *args: Any, document: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rule_keys = sorted(document["rules"])
        for key in self.rule_keys:
            entry = document["rules"][key]
            self.fields[f"{key}__enabled"] = forms.BooleanField(
                required=False, initial=entry["enabled"], label="Enabled"
            )
            self.fields[f"{key}__severity"] = forms.TypedChoiceField(
                choices=Severity.choices, coerce=int, initial=entry["severity"], label="Severity"
            )
            self.fields[f"{key}__params"] = forms.CharField(
                widget=forms.Textarea(attrs={"rows": 3, "class": "mono"}),
                initial=json.dumps(entry["params"], sort_keys=True),
                label="Parameters (JSON)",
                required=False,
            )
        self.fields["settings"] = forms.CharField(
            widget=forms.Textarea(attrs={"rows": 8, "class": "mono"}),
            initial=json.dumps({name: document[name] for name in SECTIONS}, indent=2, sort_keys=True),
            label="Scoring, snooze, queue and accountability settings (JSON)",
        )
        self.fields["note"] = forms.CharField(max_length=255, required=False, label="Note (why it changed)")

    def rows(self) -> list[tuple[str, forms.BoundField, forms.BoundField, forms.BoundField]]:
        return [
            (k, self[f"{k}__enabled"], self[f"{k}__severity"], self[f"{k}__params"]) for k in self.rule_keys
        ]

    def document(self) -> dict[str, Any]:
        """The policy document the cleaned fields describe (field errors added for bad JSON)."""
        rules: dict[str, Any] = {}
        for key in self.rule_keys:
            text = self.cleaned_data.get(f"{key}__params") or "{}"
            try:
                params = json.loads(text)
            except json.JSONDecodeError as exc:
                self.add_error(f"{key}__params", f"Not JSON: {exc.msg}.")
                continue
            if not isinstance(params, dict):
                self.add_error(f"{key}__params", 'Must be a JSON object, e.g. {"days": 21}.')
                continue
            rules[key] = {
                "enabled": self.cleaned_data.get(f"{key}__enabled", False),
                "severity": self.cleaned_data.get(f"{key}__severity"),
                "params": params,
            }
        document: dict[str, Any] = {"rules": rules}
        try:
            settings = json.loads(self.cleaned_data.get("settings") or "{}")
        except json.JSONDecodeError as exc:
            self.add_error("settings", f"Not JSON: {exc.msg}.")
            return document
        if not isinstance(settings, dict):
            self.add_error("settings", "Must be a JSON object with scoring, snooze and queue.")
            return document
        document.update(settings)
        return document

    def show_problems(self, error: InvalidInput) -> None:
        """Put each problem the validator found on the field it is about."""
        for where, problem in sorted(error.fields.items()):
            parts = where.split(".")
            field = None
            if parts[0] == "rules" and len(parts) > 1 and parts[1] in self.rule_keys:
                suffix = {"severity": "severity", "enabled": "enabled"}.get(
                    parts[2] if len(parts) > 2 else ""
                )
                field = f"{parts[1]}__{suffix or 'params'}"
            elif parts[0] != "rules":
                field = "settings"
            self.add_error(field, f"{where}: {problem}")


class UploadForm(forms.Form):
    file = forms.FileField(label="Policy JSON file")
    note = forms.CharField(max_length=255, required=False, label="Note")


def is_admin(user) -> bool:
    return role_of(user) == Role.ADMIN


@login_required
@require_http_methods(["GET", "POST"])
def policy_page(request: HttpRequest) -> HttpResponse:
    policy = current_policy()
    admin = is_admin(request.user)
    form = PolicyForm(document=policy.document) if admin else None
    upload = UploadForm() if admin else None
    status = 200
    if request.method == "POST":
        if not admin:
            return refuse(request, "Only an admin can change the hygiene policy.", 403)
        if request.POST.get("action") == "upload":
            upload = UploadForm(request.POST, request.FILES)
            if upload.is_valid() and _publish_upload(request, upload):
                return redirect("policy")
        else:
            form = PolicyForm(request.POST, document=policy.document)
            form.is_valid()
            document = form.document()  # adds an error to each field whose JSON cannot be read
            if not form.errors:
                try:
                    version = publish_policy(request.user, document, note=form.cleaned_data["note"])
                except InvalidInput as exc:
                    form.show_problems(exc)
                except ServiceError as exc:
                    return refuse(request, exc)
                else:
                    messages.success(request, f"Published policy v{version.number}.")
                    return redirect("policy")
        status = 400
    from truepipe.accountability import queries as accountability

    context = {
        "policy": policy,
        "accountability": policy.accountability,
        "acknowledged": accountability.acknowledged(request.user, policy),
        "unacknowledged": list(accountability.unacknowledged(request.user, policy)[:200])
        if role_of(request.user) in (Role.MANAGER, Role.ADMIN)
        else [],
        "rules": rule_lines(policy),
        "admin": admin,
        "form": form,
        "upload": upload,
        "versions": history() if admin else [],
    }
    return render(request, "web/policy/page.html", context, status=status)


def _publish_upload(request: HttpRequest, upload: UploadForm) -> bool:
    file = upload.cleaned_data["file"]
    if file.size > MAX_UPLOAD:
        upload.add_error("file", "A policy file is at most 256 KB.")
        return False
    try:
        document = parse_text(file.read())
        note = upload.cleaned_data["note"] or f"uploaded {file.name}"
        version = publish_policy(request.user, document, note=note)
    except InvalidInput as exc:
        upload.add_error("file", exc.message)
        for where, problem in sorted(exc.fields.items()):
            upload.add_error("file", f"{where}: {problem}")
        return False
    messages.success(request, f"Published policy v{version.number} from {file.name}.")
    return True


@login_required
@require_GET
def policy_export(request: HttpRequest) -> HttpResponse:
    policy = current_policy()
    response = HttpResponse(export_text(policy), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="truepipe-policy-v{policy.version}.json"'
    return response
