from django.contrib import admin

from truepipe.core.admin import AdminRoleMixin, ReadOnlyAdminMixin
from truepipe.people.models import ApiToken, Quota, SalesProfile, Team


@admin.register(Team)
class TeamAdmin(AdminRoleMixin, admin.ModelAdmin):
    list_display = ("name", "region")
    search_fields = ("name",)


@admin.register(SalesProfile)
class SalesProfileAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Roles and reporting lines change through people.services (it keeps `path` and is_staff right)."""

    list_display = ("user", "role", "manager", "team", "title")
    list_filter = ("role", "team")
    search_fields = ("user__username", "user__first_name", "user__last_name")
    list_select_related = ("user", "manager", "team")


@admin.register(Quota)
class QuotaAdmin(AdminRoleMixin, admin.ModelAdmin):
    list_display = ("user", "period_start", "period_end", "amount", "currency")
    list_select_related = ("user",)


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("prefix", "user", "name", "created_at", "last_used_at", "revoked_at")
    list_select_related = ("user",)
    exclude = ("digest",)
