"""The Django admin is for admins (sales ops) only, whatever a user's is_staff flag says.

Domain records (accounts, contacts, deals, activities, history) are read-only
here: their writes must go through the service layer, which the admin's generic
save would bypass. Configuration (stages, products, teams) is edited here.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from truepipe.core.models import ExternalId
from truepipe.core.visibility import role_of
from truepipe.people.models import Role


def is_admin(request: HttpRequest) -> bool:
    user = request.user
    return bool(user.is_active and user.is_staff and role_of(user) == Role.ADMIN)


def _admin_site_has_permission(request: HttpRequest) -> bool:
    return is_admin(request)


# The default site asks only for is_active and is_staff; truepipe also asks for the admin role.
admin.site.has_permission = _admin_site_has_permission  # type: ignore[method-assign]
admin.site.site_header = "truepipe administration"
admin.site.site_title = "truepipe admin"


class AdminRoleMixin:
    """Admin-role users may use this model admin without per-model Django permissions."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_admin(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_admin(request)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return is_admin(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_admin(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_admin(request)


class ReadOnlyAdminMixin(AdminRoleMixin):
    """Viewable by admins; changed only through the service layer (pages, API, CLI)."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ExternalId)
class ExternalIdAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("kind", "system", "value", "object_id")
    list_filter = ("kind", "system")
    search_fields = ("value",)
