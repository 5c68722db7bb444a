from django.apps import AppConfig


class ActivitiesConfig(AppConfig):
    name = "truepipe.activities"
    label = "activities"
    verbose_name = "Activities"
