from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "truepipe.web"
    label = "web"
