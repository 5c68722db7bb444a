from django.apps import AppConfig


class OnelineConfig(AppConfig):
    name = "truepipe.oneline"
    label = "oneline"
    verbose_name = "One-line updates"
