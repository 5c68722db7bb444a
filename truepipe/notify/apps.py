from django.apps import AppConfig


class NotifyConfig(AppConfig):
    name = "truepipe.notify"
    label = "notify"
    verbose_name = "Notifications"
