from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "truepipe.accounts"
    label = "accounts"
    verbose_name = "Accounts and contacts"
