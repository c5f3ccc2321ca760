"""Who may do what: the secret key, hosts, logins, the development superuser, HTTPS behind a
proxy, message authentication (docs/security.md) and the plaintext opt-out."""

from datetime import timedelta

from .environment import choice, env, header_and_value

# Required where it is used (production.py, by role); development and test give their own.
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])

# The local development superuser (``manage.py ensure_development_superuser``): only
# development settings turn this on; everywhere else its password is refused at login.
RELAY_DEVELOPMENT_SUPERUSER = False
AUTHENTICATION_BACKENDS = [
    # First, so a locked-out login is refused before its password is even hashed.
    "axes.backends.AxesStandaloneBackend",
    "relay_app.auth.GuardedModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Logins (the admin, the browsable API) through django-axes: this many failures for one user
# name from one address lock that pair out for this many minutes. Counted per pair: a guesser
# at one address cannot lock a user out everywhere, nor everyone behind that address.
RELAY_LOGIN_FAILURE_LIMIT = env.int("RELAY_LOGIN_FAILURE_LIMIT", default=5)
RELAY_LOGIN_LOCKOUT_MINUTES = env.float("RELAY_LOGIN_LOCKOUT_MINUTES", default=15)
AXES_FAILURE_LIMIT = RELAY_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=RELAY_LOGIN_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The same client address as the throttles, trusting X-Forwarded-For only from our proxies.
AXES_CLIENT_IP_CALLABLE = "relay_app.api.client_address.client_address"
AXES_COOLOFF_MESSAGE = (
    "Too many failed logins for this user from this address: try again in"
    f" {RELAY_LOGIN_LOCKOUT_MINUTES:g} minutes."
)
# Axes logs every login at INFO; failures and lockouts are still WARNINGs.
AXES_VERBOSE = False

# Error reports (the DEBUG page, error emails) hide passwords inside URL settings as well,
# e.g. the Redis password in CELERY_BROKER_URL, not only settings named *PASSWORD*/*KEY*.
DEFAULT_EXCEPTION_REPORTER_FILTER = "relay_app.error_reports.CredentialHidingFilter"

# The header a TLS-terminating proxy sets, and its value (HTTP_X_FORWARDED_PROTO,https): a
# request that carries it counts as HTTPS. Trusted only when configured: the proxy must set or
# strip it on every request, or any client could claim to have come over HTTPS.
SECURE_PROXY_SSL_HEADER = header_and_value("DJANGO_SECURE_PROXY_SSL_HEADER")

# Which process this is: web, worker, grpc, beat, flower, stack (the local stack's own tool,
# its readiness checks), command (a manage.py command typed by hand), or unsaid: as strict as
# all of them. The table of processes and compose set it. Production requires the secrets of
# its role alone (production.py), and checks the hops it uses (relay_app/checks.py).
RELAY_PROCESS_ROLE = choice(
    "RELAY_PROCESS_ROLE",
    "",
    ("", "WEB", "WORKER", "GRPC", "BEAT", "FLOWER", "STACK", "COMMAND"),
).lower()
# The local stack's identities (ops/tls.py: a certificate per service, passwords and keys),
# which the table of processes hands out, each process its own; empty: none (plaintext).
RELAY_TLS_DIR = env.str("RELAY_TLS_DIR", default="")

# Production refuses a plaintext or credential-less hop (relay.E001-E003, relay_app/checks.py)
# unless this says, on purpose, that the network itself is trusted.
RELAY_ALLOW_PLAINTEXT = env.bool("RELAY_ALLOW_PLAINTEXT", default=False)

# HMAC keys (relay_app/signing.py), secrets from the environment only. Web servers and
# workers seal and open the chain's task messages with the first, so a task that anyone else
# wrote to Redis is refused; workers and gRPC servers make and check the gRPC hop's
# capability with the second. Development and test settings set keys of the repository's
# (insecure-); production requires keys of its own (environment.signing_key), in the
# processes whose role uses them.
RELAY_CHAIN_SIGNING_KEY = env.str("RELAY_CHAIN_SIGNING_KEY", default="")
RELAY_GRPC_CAPABILITY_KEY = env.str("RELAY_GRPC_CAPABILITY_KEY", default="")
