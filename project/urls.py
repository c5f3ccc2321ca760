"""URL map: the landing page, the relay API, the original example's endpoint, health, the admin and
the live page."""

from django.contrib import admin
from django.urls import include, path

from relay_app.home import home_page
from relay_app.live import live_page

urlpatterns = [
    # What the relay is, and a link to each of its parts (relay_app/home.py).
    path("", home_page, name="home"),
    path("", include("relay_app.api.urls")),
    path("admin/", admin.site.urls),
    # A person relays a message and watches its hops arrive (relay_app/live.py).
    path("live/", live_page, name="live"),
]

# JSON, like every other answer of the API, when DEBUG is off.
handler404 = "relay_app.api.errors.not_found"
handler500 = "relay_app.api.errors.server_error"
