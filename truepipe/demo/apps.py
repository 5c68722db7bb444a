from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "truepipe.demo"
    label = "demo"
