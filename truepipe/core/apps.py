from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "truepipe.core"
    label = "core"
    verbose_name = "Core"
