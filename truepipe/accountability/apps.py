from django.apps import AppConfig


class AccountabilityConfig(AppConfig):
    name = "truepipe.accountability"
    label = "accountability"
    verbose_name = "Accountability"

    def ready(self) -> None:
        # Offenses follow every full evaluation (registered on the engine's after-evaluation hook).
        from truepipe.accountability import offenses  # noqa: F401
