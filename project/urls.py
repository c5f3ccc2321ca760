"""URL map: the relay API, the seed's endpoint, health, and the admin."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("relay_app.api.urls")),
    path("admin/", admin.site.urls),
]
