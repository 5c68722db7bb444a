from django.contrib import admin

from truepipe.accounts.models import Account, AccountChange, AccountDomain, Contact, ContactEmail
from truepipe.core.admin import ReadOnlyAdminMixin


class DomainInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = AccountDomain
    extra = 0


@admin.register(Account)
class AccountAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("name", "industry", "employees", "owner", "updated_at", "deleted_at")
    search_fields = ("name", "domains__domain")
    list_select_related = ("owner",)
    inlines = [DomainInline]


class EmailInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = ContactEmail
    extra = 0


@admin.register(Contact)
class ContactAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("__str__", "title", "account", "owner", "deleted_at")
    search_fields = ("first_name", "last_name", "emails__email")
    list_select_related = ("account", "owner")
    inlines = [EmailInline]


@admin.register(AccountChange)
class AccountChangeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("account", "field", "old_value", "new_value", "changed_by", "via", "changed_at")
    list_filter = ("via", "field")
    list_select_related = ("account", "changed_by")
