# The relay's commands. `make run` and `make test` install what is missing first.
.DEFAULT_GOAL := help
SHELL := /bin/bash

VENV := .venv
PY := $(VENV)/bin/python
KAFKA_VERSION := $(shell sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' ops/kafka/pom.xml)
KAFKA_STAMP := var/kafka/libs/.kafka-$(KAFKA_VERSION)
# Zipkin, the local stacks' trace viewer: its server, one jar from Maven Central.
ZIPKIN_VERSION := 3.5.1
ZIPKIN_JAR := var/zipkin/zipkin-server-exec.jar

# The local stack runs development settings, named here rather than left to a default:
# every entry point that serves (wsgi, celery, grpcserver) defaults to production's.
DEV := DJANGO_SETTINGS_MODULE=project.settings.development
# Its secure profile (make up-secure): production settings with TLS and credentials on every
# hop, a certificate per service and the secrets made by ops/tls.py into var/secure/tls.
SECURE := DJANGO_SETTINGS_MODULE=project.settings.secure
SECURE_TLS := var/secure/tls
# Its cluster profile (make up-cluster): the same, with several Kafka nodes, workers, gRPC and
# web servers (its identities in var/cluster/tls, made as it starts).
CLUSTER := DJANGO_SETTINGS_MODULE=project.settings.cluster
# make demo, down and status act on the profile that is up (written by up and up-secure).
PROFILE := DJANGO_SETTINGS_MODULE=$$(cat var/profile 2>/dev/null || echo project.settings.development)

.PHONY: help setup system python kafka zipkin run run-cluster up up-secure up-cluster down demo status token superuser trace test test-fast test-postgres lint check-deploy check-compose lock audit proto bench bench-quick profile chaos chaos-quick chaos-cluster sweep clean

help: ## List the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

setup: system python kafka zipkin ## Install everything the stack needs (idempotent)

system:
	@bash ops/bootstrap.sh

python: $(VENV)/.installed

# requirements-dev.txt includes requirements.txt (the runtime, all the Docker image installs);
# each is locked, every dependency pinned with its hashes (make lock), and installed from that.
$(VENV)/.installed: requirements.lock requirements-dev.lock
	@echo "[setup] Python environment in $(VENV) from requirements-dev.lock (first time: a minute or two$(if $(VERBOSE),,; VERBOSE=1 shows pip's output))"
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install $(if $(VERBOSE),--progress-bar on,--quiet) --require-hashes --no-deps \
		-r requirements-dev.lock
	@touch $@

# Maven quiet unless VERBOSE=1; Debian's Maven 3.8 prints colour resets even with -q.
MVN := mvn -B $(if $(VERBOSE),,-q) -Dstyle.color=never
MVN_FILTER := sed -u 's/\x1b\[0m//g'

kafka: $(KAFKA_STAMP)

# Apache Kafka's broker jars from Maven Central (cached in ~/.m2), copied to var/kafka/libs.
$(KAFKA_STAMP): ops/kafka/pom.xml | system
	@echo "[setup] Apache Kafka $(KAFKA_VERSION) broker jars through Maven (first time: about 80 MB)"
	@rm -rf var/kafka/libs
	@set -o pipefail; $(MVN) -f ops/kafka/pom.xml dependency:copy-dependencies \
		-DoutputDirectory=$(CURDIR)/var/kafka/libs -DincludeScope=runtime 2>&1 | $(MVN_FILTER) || true
	@ls var/kafka/libs/kafka_2.13-$(KAFKA_VERSION).jar >/dev/null 2>&1 \
		|| { echo "[setup] Maven could not fetch Kafka $(KAFKA_VERSION): see the lines above" >&2; exit 1; }
	@touch $@

zipkin: $(ZIPKIN_JAR)

$(ZIPKIN_JAR): | system
	@echo "[setup] Zipkin $(ZIPKIN_VERSION), the trace viewer, through Maven (first time: about 130 MB)"
	@set -o pipefail; $(MVN) dependency:copy -DoutputDirectory=$(CURDIR)/var/zipkin \
		-Dartifact=io.zipkin:zipkin-server:$(ZIPKIN_VERSION):jar:exec 2>&1 | $(MVN_FILTER) \
		|| { echo "[setup] Maven could not fetch Zipkin $(ZIPKIN_VERSION): see the lines above" >&2; exit 1; }
	@mv var/zipkin/zipkin-server-$(ZIPKIN_VERSION)-exec.jar $@

run: setup ## Start the whole stack in the foreground, send "hello world", follow the log
	@$(DEV) $(PY) -m ops.stack run

up: setup ## Start the stack in the background and wait until every service is healthy
	@$(DEV) $(PY) -m ops.stack up && echo project.settings.development > var/profile

up-secure: setup ## The stack with TLS and credentials on every hop, no plaintext port
	@$(PY) -m ops.tls $(SECURE_TLS)
	@$(SECURE) $(PY) -m ops.stack up && echo project.settings.secure > var/profile

up-cluster: setup ## The stack with 3 Kafka nodes, 2 workers, 2 gRPC and 2 web servers behind nginx
	@bash ops/bootstrap.sh --cluster
	@$(CLUSTER) $(PY) -m ops.stack up && echo project.settings.cluster > var/profile

run-cluster: setup ## The cluster profile in the foreground, like make run
	@bash ops/bootstrap.sh --cluster
	@$(CLUSTER) $(PY) -m ops.stack run

down: ## Stop the background stack (whichever profile is up)
	@test -x $(PY) && $(PROFILE) $(PY) -m ops.stack down || true
	@rm -f var/profile

demo: ## Send one "hello world" to the running stack (with an API token) and print its log
	@$(PROFILE) $(PY) -m ops.stack demo

status: ## Which services of the stack are running
	@$(PROFILE) $(PY) -m ops.stack status

test-fast: python ## The tests that need no running service (seconds): tests/unit
	@$(PY) manage.py test --noinput tests.unit

test: setup ## The whole suite (unit, then through the real stack), then the postgres-tagged tests on PostgreSQL
	@bash ops/bootstrap.sh --tests
	@$(PY) manage.py test --noinput --verbosity 2
	@$(MAKE) --no-print-directory test-postgres

# The tests tagged "postgres" (database-facing) again, on PostgreSQL instead of SQLite: a
# server made for the run and dropped after it (pg_virtualenv, PostgreSQL's own tool).
test-postgres: setup ## The tests tagged postgres, on a throw-away PostgreSQL server
	@bash ops/bootstrap.sh --tests
	@pg_virtualenv -o fsync=off -o full_page_writes=off sh -c \
		'DATABASE_URL="postgres://$$PGUSER:$$PGPASSWORD@127.0.0.1:$$PGPORT/relay" \
		$(PY) manage.py test --noinput --verbosity 2 --tag postgres'

bench: setup ## Benchmark over HTTP at concurrency 1/8/32/128 against baselines (~13 min)
	@$(PY) -m ops.bench run

bench-quick: setup ## The benchmark with fewer transactions and no soak (~1.5 min)
	@$(PY) -m ops.bench run --quick

profile: setup ## The stack's CPU per transaction split by code, with py-spy at 32 in flight (~2.5 min)
	@$(PY) -m ops.bench profile

chaos: setup ## Kill, restart and starve each service under load; check nothing is lost (~3 min)
	@$(PY) -m ops.chaos

chaos-quick: setup ## The chaos scenarios with fewer clients and shorter phases (~3 min)
	@$(PY) -m ops.chaos --quick

chaos-cluster: setup ## Kill one of each process of the cluster profile under load; check nothing is lost (~4 min)
	@bash ops/bootstrap.sh --cluster
	@$(PY) -m ops.chaos --cluster

token: ## A new API token for NAME (the user is made if missing): make token NAME=alice
	@test -n "$(NAME)" || { echo "make token NAME=<user name>" >&2; exit 2; }
	@$(PROFILE) $(PY) manage.py create_api_token $(NAME)

superuser: ## A staff user who may log into the admin, the live page and Flower (asks for a password)
	@$(PROFILE) $(PY) manage.py createsuperuser

trace: ## Print the last transaction's trace as a tree (make trace ID=<transaction id> for another)
	@$(PROFILE) $(PY) -m ops.traces $(ID)

sweep: ## Time out transactions left pending past their deadline (the worker also does it)
	@$(DEV) $(PY) manage.py settle_stale_transactions

# Django's deployment checks and the relay's own, under production settings with the minimal
# environment docs/security.md documents: a secret key made for this check alone, the host name, and
# TLS with credentials on every hop (the local CA's files and passwords stand in for yours).
check-deploy: python ## manage.py check --deploy under production settings; fails on any warning
	@set -a && . <($(PY) -m ops.tls $(SECURE_TLS) --env deployment) && set +a && \
		DJANGO_SETTINGS_MODULE=project.settings.production \
		DJANGO_ALLOWED_HOSTS=relay.example.com \
		REDIS_URL=rediss://redis.example.com:6379/0 \
		$(PY) manage.py check --deploy --fail-level WARNING

check-compose: python ## docker-compose.yml as the real Compose CLI reads it (builds the CLI from Go once: minutes)
	@RELAY_COMPOSE_CLI="$$(bash ops/compose.sh)" $(PY) manage.py test --noinput tests.unit.test_compose

lock: python ## Lock requirements*.txt, every dependency with its hashes, into requirements*.lock (minutes)
	@for name in requirements requirements-dev; do \
		echo "[lock] $$name.lock from $$name.txt"; \
		$(VENV)/bin/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe \
			--no-emit-find-links --no-emit-index-url -o $$name.lock $$name.txt || exit 1; \
	done

audit: python ## Known vulnerabilities in the pinned requirements (pip-audit; says so if it cannot tell)
	@$(PY) -m ops.audit

lint: python ## ruff, mypy, and the gRPC stubs up to date with proto/
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/mypy
	@$(MAKE) --no-print-directory proto >/dev/null
	@git diff --quiet -- relay/ || { git diff --stat -- relay/; echo "relay/v1/ is not what proto/ generates: run make proto and commit it" >&2; exit 1; }

proto: python ## Regenerate the gRPC stubs in relay/v1/ from proto/relay/v1/relay.proto
	@$(PY) -m grpc_tools.protoc -I proto --python_out=. --pyi_out=. --grpc_python_out=. proto/relay/v1/relay.proto
	@echo "regenerated relay/v1/ from proto/relay/v1/relay.proto"

clean: down ## Stop the stack and delete var/ (data, logs, Kafka's jars)
	rm -rf var
