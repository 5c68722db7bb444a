from django.apps import AppConfig


class HygieneConfig(AppConfig):
    name = "truepipe.hygiene"
    label = "hygiene"
    verbose_name = "Data discipline"

    def ready(self) -> None:
        # Registers the incremental evaluation listener on the service layer's write hook.
        from truepipe.hygiene import incremental  # noqa: F401
