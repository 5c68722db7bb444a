from django.contrib import admin

from truepipe.activities.models import Activity
from truepipe.core.admin import ReadOnlyAdminMixin


@admin.register(Activity)
class ActivityAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("subject", "kind", "occurred_at", "logged_at", "owner", "opportunity", "source")
    list_filter = ("kind", "source")
    search_fields = ("subject",)
    list_select_related = ("owner", "opportunity")
    raw_id_fields = ("participants",)
