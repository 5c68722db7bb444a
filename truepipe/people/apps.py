from django.apps import AppConfig


class PeopleConfig(AppConfig):
    name = "truepipe.people"
    label = "people"
    verbose_name = "People and teams"
