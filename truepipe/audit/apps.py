from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "truepipe.audit"
    label = "audit"
    verbose_name = "Audit log"
