from django.contrib import admin

from truepipe.contracts.models import Contract, ShadowDismissal
from truepipe.core.admin import ReadOnlyAdminMixin


@admin.register(Contract)
class ContractAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("customer", "amount", "currency", "signed_on", "reference", "rep", "opportunity")
    list_filter = ("currency",)
    search_fields = ("customer", "reference")


@admin.register(ShadowDismissal)
class ShadowDismissalAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("domain", "user", "reason", "dismissed_at", "dismissed_by")
    list_filter = ("reason",)
    search_fields = ("domain",)
