from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "truepipe.api"
    label = "api"
