"""vCards of contacts: download the visible ones (all, or one), upload a .vcf to import it."""

from __future__ import annotations

import re

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from truepipe.accounts import vcard
from truepipe.core import visibility
from truepipe.web.views.common import refuse

CONTENT_TYPE = "text/vcard; charset=utf-8"
MAX_UPLOAD = 5 * 1024 * 1024  # a few thousand cards; larger books go through `truepipe import vcard`


def _version(request: HttpRequest) -> str:
    version = request.GET.get("version", "3.0")
    return version if version in vcard.VERSIONS else "3.0"


@login_required
@require_GET
def contacts_vcf(request: HttpRequest) -> StreamingHttpResponse:
    """Every contact the user may see, as one .vcf (3.0; ?version=4.0 for RFC 6350)."""
    response = StreamingHttpResponse(
        vcard.write_vcards(request.user, _version(request)), content_type=CONTENT_TYPE
    )
    stamp = timezone.localdate().isoformat()
    response["Content-Disposition"] = f'attachment; filename="truepipe-contacts-{stamp}.vcf"'
    return response


@login_required
@require_GET
def contact_vcf(request: HttpRequest, pk: int) -> HttpResponse:
    contact = get_object_or_404(vcard.exportable_contacts(request.user), pk=pk)
    response = HttpResponse(vcard.contact_vcard(contact, _version(request)), content_type=CONTENT_TYPE)
    name = re.sub(r"[^A-Za-z0-9]+", "-", contact.full_name).strip("-").lower() or f"contact-{contact.pk}"
    response["Content-Disposition"] = f'attachment; filename="{name}.vcf"'
    return response


class VCardUploadForm(forms.Form):
    """What web/contacts/_vcard_upload.html posts (that template is also on the contacts list)."""

    file = forms.FileField()
    create_accounts = forms.BooleanField(required=False)
    skip_bad = forms.BooleanField(required=False)
    dry_run = forms.BooleanField(required=False)

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD:
            raise forms.ValidationError(
                "The file is larger than 5 MB: import it with `truepipe import vcard PATH` instead."
            )
        return upload


@login_required
@require_http_methods(["GET", "POST"])
def contacts_vcf_import(request: HttpRequest) -> HttpResponse:
    """Upload a .vcf: its cards go through the same import as `truepipe import vcard`, as this user."""
    user = request.user
    if not visibility.can_create(user):
        return refuse(request, "Your role can read contacts but not import them.")
    form = VCardUploadForm(request.POST or None, request.FILES or None)
    context: dict = {"form": form, "report": None}
    status = 200
    if request.method == "POST":
        if not form.is_valid():
            status = 400
        else:
            upload = form.cleaned_data["file"]
            report = vcard.import_vcards(
                [("", upload.read())],
                actor=user,
                dry_run=form.cleaned_data["dry_run"],
                skip_bad=form.cleaned_data["skip_bad"],
                create_accounts=form.cleaned_data["create_accounts"],
            )
            context["report"] = report
            context["summary"] = report.summary(skip_bad="tick “Import the good cards even if some are bad”")
            if report.errors and not report.committed and not report.dry_run:
                status = 400
    return render(request, "web/contacts/vcard_import.html", context, status=status)
