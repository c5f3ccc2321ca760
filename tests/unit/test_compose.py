"""docker-compose.yml as the real Compose CLI resolves it (``docker-compose config``, which
needs no Docker engine), against the process table (ops/processes.py) and the cluster profile
it mirrors. ``make check-compose`` builds the CLI (``ops/compose.sh``, minutes the first time)
and runs these; without the CLI they are skipped."""

import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path
from typing import Any

from django.conf import settings
from django.test import SimpleTestCase

from ops import processes
from relay_app.api.parsers import max_body_bytes

ROOT = Path(settings.BASE_DIR)
# The relay's own processes, built from the image; each scales but the scheduler.
SCALED = {"web", "worker", "grpc"}
RELAY = {"migrate", "topics", "beat", "flower"} | SCALED
CONTROLLERS = {f"kafka-controller-{n}" for n in (1, 2, 3)}
BROKERS = {f"kafka-{n}" for n in (1, 2, 3)}
BROKER_ADDRESSES = ",".join(f"{broker}:9092" for broker in sorted(BROKERS))


def compose_cli() -> str:
    """The Compose CLI's path: ``RELAY_COMPOSE_CLI``, or where ``ops/compose.sh`` builds it."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "relay"
    built = sorted(cache.glob("docker-compose-*"))
    path = os.environ.get("RELAY_COMPOSE_CLI") or (str(built[-1]) if built else "")
    if not path or not os.access(path, os.X_OK):
        raise unittest.SkipTest("the Compose CLI is not built: `make check-compose` builds it")
    return path


def resolved(env_file: str | None) -> subprocess.CompletedProcess[str]:
    """``docker-compose config --format json`` in a project folder holding ``env_file``'s text
    as its .env (none if ``None``), as a user's checkout would."""
    with tempfile.TemporaryDirectory() as folder:
        if env_file is not None:
            (Path(folder) / ".env").write_text(env_file)
        shutil.copy(ROOT / "docker-compose.yml", folder)
        (Path(folder) / "ops").mkdir()
        shutil.copy(ROOT / "ops" / "nginx.conf.template", Path(folder) / "ops")
        return subprocess.run(
            [compose_cli(), "--project-directory", folder, "config", "--format", "json"],
            cwd=folder,
            # Not the test settings' keys: compose takes a variable from the shell before .env.
            env={name: value for name, value in os.environ.items() if name not in SECRETS},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


# The secrets .env.example leaves for the user to fill in, as a test fills them.
SECRETS = {
    "DJANGO_SECRET_KEY": "test-only-" + "k" * 40,
    "POSTGRES_PASSWORD": "test-only-password",
    "REDIS_WEB_PASSWORD": "test-only-redis-web-password",
    "REDIS_WORKER_PASSWORD": "test-only-redis-worker-password",
    "REDIS_MONITOR_PASSWORD": "test-only-redis-monitor-password",
    "RELAY_CHAIN_SIGNING_KEY": "test-only-chain-" + "c" * 32,
    "RELAY_GRPC_CAPABILITY_KEY": "test-only-grpc-" + "g" * 32,
}


def an_env_file(**left_out: bool) -> str:
    """.env.example with its secrets filled in, as the file's header tells the user to do
    (but those named in ``left_out``)."""
    example = (ROOT / ".env.example").read_text()
    for name, value in SECRETS.items():
        filled = "" if left_out.get(name) else f"{name}={value}"
        example, count = re.subn(rf"(?m)^{name}=$", filled, example)
        if count != 1:
            raise AssertionError(f".env.example has no empty {name}= line to fill in")
    return example


class ComposeTests(SimpleTestCase):
    config: dict[str, Any]

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        run = resolved(an_env_file())
        if run.returncode != 0:
            raise AssertionError(f"docker-compose config failed:\n{run.stderr}")
        cls.config = json.loads(run.stdout)

    @property
    def services(self) -> dict[str, Any]:
        services: dict[str, Any] = self.config["services"]
        return services

    def test_the_services_mirror_the_cluster_profile(self) -> None:
        self.assertEqual(
            set(self.services),
            RELAY | CONTROLLERS | BROKERS | {"postgres", "redis", "proxy", "zipkin"},
        )
        for name in SCALED:
            with self.subTest(name):
                # Two of each by default, as make up-cluster; --scale changes it.
                self.assertEqual(self.services[name]["deploy"]["replicas"], 2)
                # A replica has no fixed name and no host port, or a second could not start.
                self.assertNotIn("container_name", self.services[name])
                self.assertNotIn("ports", self.services[name])

    def test_the_relay_runs_the_tables_commands(self) -> None:
        expected = {
            "web": processes.web_command("0.0.0.0:8000"),
            "grpc": processes.grpc_command("0.0.0.0:50051"),
            # Many alike: the scheduler runs apart, once.
            "worker": processes.worker_command(
                hostname="relay@%h",
                pool=settings.RELAY_WORKER_POOL,
                concurrency=settings.RELAY_WORKER_CONCURRENCY,
            ),
            "beat": processes.beat_command(schedule="/app/var/run/celerybeat-schedule"),
            "flower": processes.flower_command(address="0.0.0.0:5555"),
        }
        for name, command in expected.items():
            with self.subTest(name):
                self.assertEqual(self.services[name]["command"], command)

    def test_the_relay_runs_production_settings_with_secrets_from_the_env_file(self) -> None:
        for name in RELAY:
            with self.subTest(name):
                service = self.services[name]
                environment = service["environment"]
                self.assertEqual(
                    environment["DJANGO_SETTINGS_MODULE"], "project.settings.production"
                )
                for secret in ("DJANGO_SECRET_KEY", "RELAY_CHAIN_SIGNING_KEY"):
                    self.assertEqual(environment[secret], SECRETS[secret])
                self.assertEqual(
                    environment["RELAY_GRPC_CAPABILITY_KEY"], SECRETS["RELAY_GRPC_CAPABILITY_KEY"]
                )
                self.assertIn("test-only-password", environment["DATABASE_URL"])
                self.assertEqual(environment["KAFKA_ADDRESS"], BROKER_ADDRESSES)
                self.assertEqual(environment["RELAY_KAFKA_BROKERS"], "3")
                # One name, which DNS resolves to every replica of the grpc service.
                self.assertEqual(environment["GRPC_ADDRESS"], "grpc:50051")

    def test_without_an_env_file_it_refuses_to_run_and_says_why(self) -> None:
        run = resolved(None)
        self.assertNotEqual(run.returncode, 0)
        self.assertIn(".env", run.stderr)

    def test_a_missing_secret_is_named(self) -> None:
        for name in (
            "POSTGRES_PASSWORD",
            "REDIS_WEB_PASSWORD",
            "REDIS_WORKER_PASSWORD",
            "REDIS_MONITOR_PASSWORD",
            "RELAY_CHAIN_SIGNING_KEY",
            "RELAY_GRPC_CAPABILITY_KEY",
        ):
            with self.subTest(name):
                run = resolved(an_env_file(**{name: True}))
                self.assertNotEqual(run.returncode, 0)
                self.assertIn(f"set {name} in .env", run.stderr)

    def test_redis_has_a_user_per_role_with_the_local_stacks_rules_and_no_password_in_sight(
        self,
    ) -> None:
        redis = self.services["redis"]
        passwords = {f"REDIS_{user.upper()}_PASSWORD" for user in processes.REDIS_USERS}
        for name in passwords:
            self.assertEqual(redis["environment"][name], SECRETS[name])
        command = " ".join(redis["command"])
        self.assertIn("user default off resetkeys resetchannels -@all", command)
        channels = processes.redis_channels(0)  # REDIS_URL's database
        for user, rules in processes.REDIS_USERS.items():
            with self.subTest(user):
                allowed = " ".join(f"&{channel}" for channel in channels[user])
                self.assertIn(f"user {user} on #", command)
                self.assertIn(f" resetchannels {allowed} {rules}", command)
        for name in passwords:
            self.assertNotIn(SECRETS[name], command)
        self.assertIn("sha256sum", command)  # Redis keeps each password as its digest
        self.assertIn("exec docker-entrypoint.sh redis-server", command)
        # The health check signs in as the monitor, its password through the environment.
        check = " ".join(redis["healthcheck"]["test"])
        self.assertIn("REDISCLI_AUTH=", check)
        self.assertIn("--user monitor", check)
        self.assertNotIn(SECRETS["REDIS_MONITOR_PASSWORD"], check)

    def test_each_relay_service_is_given_its_roles_redis_user_and_no_other_password(
        self,
    ) -> None:
        users = {"web": "web", "worker": "worker", "beat": "worker", "flower": "monitor"}
        passwords = {f"REDIS_{user.upper()}_PASSWORD" for user in processes.REDIS_USERS}
        for name in RELAY:
            with self.subTest(name):
                environment = self.services[name]["environment"]
                user = users.get(name)
                self.assertEqual(environment.get("REDIS_USERNAME"), user)
                own = SECRETS[f"REDIS_{user.upper()}_PASSWORD"] if user else None
                self.assertEqual(environment.get("REDIS_PASSWORD"), own)
                # .env reaches every service whole (env_file): the others' are blanked.
                others = {SECRETS[password] for password in passwords} - {own}
                self.assertFalse(others & set(environment.values()))
                # Its role: the secrets and hops production settings ask of it.
                role = "command" if name in ("migrate", "topics") else name
                self.assertEqual(environment["RELAY_PROCESS_ROLE"], role)

    def test_only_the_proxy_is_published_and_on_loopback(self) -> None:
        published = {
            name: [(port["host_ip"], port["published"]) for port in service["ports"]]
            for name, service in self.services.items()
            if service.get("ports")
        }
        self.assertEqual(
            published,
            {
                "proxy": [("127.0.0.1", "8000"), ("127.0.0.1", "5555")],
                "zipkin": [("127.0.0.1", "9411")],
            },
        )

    def test_every_long_running_service_has_a_health_check_and_starts_on_health(self) -> None:
        for name, service in self.services.items():
            if name in {"migrate", "topics", "beat", "flower"}:
                continue
            with self.subTest(name):
                self.assertTrue(service["healthcheck"]["test"])
        # Each waits for what it needs to be healthy (or done), never merely started.
        waits = {
            "kafka-1": CONTROLLERS,
            "topics": BROKERS | {"postgres", "redis"},
            "grpc": BROKERS | {"postgres", "redis"},
            "worker": BROKERS | {"postgres", "redis", "grpc", "topics"},
            "web": BROKERS | {"postgres", "redis", "grpc", "topics", "migrate"},
            "proxy": {"web"},
        }
        for name, needs in waits.items():
            with self.subTest(name):
                depends = self.services[name]["depends_on"]
                self.assertLessEqual(needs, set(depends))
                for need, condition in depends.items():
                    self.assertIn(
                        condition["condition"],
                        {"service_healthy", "service_completed_successfully"},
                        f"{name} waits on {need} merely started",
                    )
        # The relay's health checks run its own probe of the process in the container.
        for name in SCALED:
            with self.subTest(name):
                self.assertEqual(
                    self.services[name]["healthcheck"]["test"],
                    ["CMD", "python", "manage.py", "probe", name],
                )

    def test_kafka_runs_as_the_cluster_profile_does(self) -> None:
        # ops/kafka/cluster.properties.template with the cluster's values.
        template = (ROOT / "ops" / "kafka" / "cluster.properties.template").read_text()
        cluster = {
            key: value.format(replicas=3, min_isr=2)
            for key, value in re.findall(r"(?m)^([a-z][\w.]*)=(.*)$", template)
        }
        voters = ",".join(f"{100 + n}@kafka-controller-{n}:9093" for n in (1, 2, 3))
        # One cluster: every node formats its storage with the same id.
        ids = {self.services[name]["environment"]["CLUSTER_ID"] for name in CONTROLLERS | BROKERS}
        self.assertEqual(len(ids), 1)
        for name in CONTROLLERS | BROKERS:
            with self.subTest(name):
                service = self.services[name]
                self.assertEqual(service["image"].split(":")[0], "apache/kafka")
                environment = service["environment"]
                as_properties = {
                    key.removeprefix("KAFKA_").lower().replace("_", "."): value
                    for key, value in environment.items()
                    if key.startswith("KAFKA_")
                }
                self.assertLessEqual(cluster.items(), as_properties.items())
                self.assertEqual(environment["KAFKA_CONTROLLER_QUORUM_VOTERS"], voters)
                role = "controller" if name in CONTROLLERS else "broker"
                self.assertEqual(environment["KAFKA_PROCESS_ROLES"], role)
                # Its data on a volume of its own: a recreated container keeps its records.
                self.assertEqual(
                    [(v["type"], v["source"], v["target"]) for v in service["volumes"]],
                    [("volume", name, "/var/lib/kafka/data")],
                )

    def test_the_proxy_fills_every_value_of_the_template(self) -> None:
        template = (ROOT / "ops" / "nginx.conf.template").read_text()
        placeholders = set(re.findall(r"\$\{(RELAY_PROXY_\w+)\}", template))
        proxy = self.services["proxy"]
        self.assertEqual(
            placeholders, {k for k in proxy["environment"] if k.startswith("RELAY_PROXY_")}
        )
        command = " ".join(proxy["command"])
        for placeholder in placeholders:
            self.assertIn(placeholder, command)
        # As the local stack fills them in (ops/processes.py, proxy_config): the relay's own
        # body limit, and plain HTTP (TLS is the proxy's in front of it).
        self.assertEqual(proxy["environment"]["RELAY_PROXY_MAX_BODY"], str(max_body_bytes()))
        self.assertEqual(proxy["environment"]["RELAY_PROXY_TLS"], "")
