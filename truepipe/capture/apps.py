from django.apps import AppConfig


class CaptureConfig(AppConfig):
    name = "truepipe.capture"
    label = "capture"
    verbose_name = "E-mail and calendar capture"

    def ready(self) -> None:
        from truepipe.capture import commands
        from truepipe.importer import registry

        registry.file_importers["email"] = commands.import_email
