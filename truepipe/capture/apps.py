from django.apps import AppConfig


class CaptureConfig(AppConfig):
    name = "truepipe.capture"
    label = "capture"
    verbose_name = "E-mail and calendar capture"

    def ready(self) -> None:
        from truepipe.capture import calendar, commands
        from truepipe.importer import registry

        registry.file_importers["email"] = commands.import_email
        registry.file_importers["calendar"] = calendar.import_calendar
