from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("truepipe.api.urls")),
    path("", include("truepipe.web.urls")),
]
