from django.apps import AppConfig


class ContractsConfig(AppConfig):
    name = "truepipe.contracts"
    label = "contracts"
    verbose_name = "Contracts and the shadow pipeline"

    def ready(self) -> None:
        from truepipe.contracts import importing, services  # noqa: F401 - services hooks rematch()
        from truepipe.importer import registry

        # `truepipe import contracts PATH`: finance's signed contracts or invoices.
        registry.file_importers["contracts"] = importing.import_contracts
