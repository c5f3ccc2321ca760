"""Django itself: the apps, middleware, templates, database, time and static files."""

from pathlib import Path

from .environment import env

BASE_DIR = Path(__file__).resolve().parent.parent.parent
# Data, logs and pid files of the local stack (git-ignored); tests use their own.
RELAY_VAR_DIR = Path(env.str("RELAY_VAR_DIR", default=str(BASE_DIR / "var")))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Before rest_framework, so its login page is the relay's (it says who can log in).
    "relay_app",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served from our own static files
    "axes",  # locks out repeated failed logins (admin and the browsable API)
]

MIDDLEWARE = [
    # First, so that every error under /api/ it sees is JSON (relay_app/api/errors.py).
    "relay_app.api.errors.JsonErrorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its 429 answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite by default; PostgreSQL (or any database Django knows) when DATABASE_URL names it.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{RELAY_VAR_DIR / 'db.sqlite3'}")}
# Keep connections open across requests and tasks (each task is a "request" to Django):
# opening one per hop cost more than the hop's own query.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=600)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # The web server and the Celery worker write at the same time: WAL lets readers go on
        # while one writes, IMMEDIATE takes the write lock up front instead of failing half-way,
        # and the timeout makes a writer wait its turn rather than fail with "database is locked".
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # Tests start real worker processes, which cannot see an in-memory database.
    DATABASES["default"]["TEST"] = {"NAME": str(RELAY_VAR_DIR / "test-db.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("DJANGO_TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True
# Times to the second wherever Django shows one (the admin): project/formats/.
FORMAT_MODULE_PATH = ["project.formats"]

STATIC_URL = "static/"
STATIC_ROOT: Path | None = RELAY_VAR_DIR / "static"
