# One image for the relay's Python processes: web (gunicorn), Celery worker, gRPC server.
# Runtime requirements only, production settings by default, and a user without privileges:
# the code is root's and read-only to it; it may write var/ (logs, data) alone.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=project.settings.production \
    RELAY_VAR_DIR=/app/var
WORKDIR /app
# Every package, the dependencies' too, at the version and with the hashes locked.
COPY requirements.lock .
RUN pip install --require-hashes --no-deps -r requirements.lock
COPY . .
# Static files are collected at build time, with throw-away values for the secrets that
# production settings require (never used at run time: the real ones come from the env file).
RUN DJANGO_SECRET_KEY=build-only-never-used DJANGO_ALLOWED_HOSTS=build.invalid \
        RELAY_CHAIN_SIGNING_KEY=build-only-never-used-chain-signing-key \
        RELAY_GRPC_CAPABILITY_KEY=build-only-never-used-grpc-capability-key \
        python manage.py collectstatic --noinput -v 0 \
    && useradd --system --uid 10001 --no-create-home --home-dir /nonexistent relay \
    && mkdir -p /app/var/log /app/var/run \
    && chown -R relay: /app/var \
    && chmod 700 /app/var
USER relay
EXPOSE 8000 50051
# The web server, as ops/processes.py's web_command runs it (tests/unit/test_deployment_files.py).
CMD ["python", "-m", "gunicorn", "project.wsgi:application", "--bind", "0.0.0.0:8000", "--config", "python:project.webserver", "--worker-class", "project.webserver.ArrivalThreadWorker", "--workers", "2", "--threads", "128", "--keep-alive", "5", "--timeout", "30", "--graceful-timeout", "10", "--access-logfile", "-", "--access-logformat", "%(h)s - %(t)s \"%(m)s %(U)s %(H)s\" %(s)s %(B)s %(L)ss \"%(a)s\""]
