from django.apps import AppConfig


class ImporterConfig(AppConfig):
    name = "truepipe.importer"
    label = "importer"
