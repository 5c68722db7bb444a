from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "truepipe.accounts"
    label = "accounts"
    verbose_name = "Accounts and contacts"

    def ready(self) -> None:
        from truepipe.accounts import vcard
        from truepipe.importer import registry

        # `truepipe import vcard PATH...` (or `vcf`): contacts from .vcf files.
        registry.file_importers["vcard"] = registry.file_importers["vcf"] = vcard.import_command
