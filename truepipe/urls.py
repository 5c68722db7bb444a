from django.contrib import admin
from django.urls import include, path

from truepipe.core.views import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("truepipe.api.urls")),
    path("", include("truepipe.web.urls")),
]
