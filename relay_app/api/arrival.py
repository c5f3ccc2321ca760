"""Where the web server (``project/webserver.py``) notes each request's arrival in its WSGI
environ, for admission to count a relay's deadline from: seconds since the epoch."""

ARRIVED_AT = "relay.arrived_at"
