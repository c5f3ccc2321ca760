"""URL map: the relay API, the seed's endpoint, health, and the admin."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("relay_app.api.urls")),
    path("admin/", admin.site.urls),
]

# JSON, like every other answer of the API, when DEBUG is off.
handler404 = "relay_app.api.errors.not_found"
handler500 = "relay_app.api.errors.server_error"
