from django.contrib import admin

from truepipe.core.admin import AdminRoleMixin, ReadOnlyAdminMixin
from truepipe.pipeline.models import Opportunity, OpportunityChange, OpportunityProduct, Product, Stage


@admin.register(Stage)
class StageAdmin(AdminRoleMixin, admin.ModelAdmin):
    """The pipeline's configuration: order, kind, probability and the fields a stage requires."""

    list_display = (
        "name",
        "order",
        "kind",
        "probability",
        "forecast_category",
        "required_fields",
        "is_active",
    )
    list_editable = ("order", "is_active")
    ordering = ("order",)


@admin.register(Product)
class ProductAdmin(AdminRoleMixin, admin.ModelAdmin):
    list_display = ("name", "code", "family", "list_price", "currency", "is_active")
    search_fields = ("name", "code")


class LineInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = OpportunityProduct
    extra = 0


@admin.register(Opportunity)
class OpportunityAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("name", "account", "owner", "stage", "amount", "currency", "close_date", "updated_at")
    list_filter = ("stage",)
    search_fields = ("name", "account__name")
    list_select_related = ("account", "owner", "stage")
    inlines = [LineInline]


@admin.register(OpportunityChange)
class OpportunityChangeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("opportunity", "field", "old_value", "new_value", "changed_by", "via", "changed_at")
    list_filter = ("via", "field")
    list_select_related = ("opportunity", "changed_by")
