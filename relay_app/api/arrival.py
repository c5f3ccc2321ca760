"""Where the web server (``project/webserver.py``) and the application hand each other word of
a request in its WSGI environ: its arrival, which admission counts a relay's deadline from
(seconds since the epoch), and whether admission refused it, which the web server counts the
CPU of."""

ARRIVED_AT = "relay.arrived_at"
REFUSED_AT_CAPACITY = "relay.refused_at_capacity"
