from django.urls import path

from truepipe.api.v1 import api

urlpatterns = [path("", api.urls)]
