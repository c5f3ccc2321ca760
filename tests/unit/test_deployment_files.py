"""The Docker image and the compose file: production settings, no root, no secrets in git."""

import json
import re
from pathlib import Path

from django.conf import settings
from django.test import SimpleTestCase

from ops import processes

from ..support import nginx_seconds

ROOT = Path(settings.BASE_DIR)


class DockerfileTests(SimpleTestCase):
    def test_the_image_runs_as_a_user_without_privileges_with_runtime_requirements_only(
        self,
    ) -> None:
        dockerfile = (ROOT / "Dockerfile").read_text()
        users = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
        self.assertTrue(users, "no USER instruction: the image would run as root")
        self.assertNotIn(users[-1], ("root", "0"))
        self.assertIn("pip install --require-hashes --no-deps -r requirements.lock", dockerfile)
        self.assertNotIn("requirements-dev", dockerfile)
        self.assertIn("DJANGO_SETTINGS_MODULE=project.settings.production", dockerfile)
        runtime = (ROOT / "requirements.txt").read_text()
        for tool in ("ruff", "mypy", "playwright", "schemathesis", "matplotlib", "pip-audit"):
            self.assertNotRegex(runtime, rf"(?m)^{tool}\b", f"{tool} is not needed at run time")

    def test_dockerignore_keeps_the_environment_data_history_and_secrets_out(self) -> None:
        ignored = set((ROOT / ".dockerignore").read_text().split())
        self.assertLessEqual({".venv/", "var/", ".git/", ".env"}, ignored)


class SameCommandsAsTheStackTests(SimpleTestCase):
    """The image runs its process as the local stack does (ops/processes.py); compose is
    checked through the real Compose CLI (tests/integration/test_compose.py)."""

    def test_the_image_runs_the_web_server_as_the_table_does(self) -> None:
        cmd = re.search(r"^CMD (\[.*\])$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
        assert cmd is not None
        self.assertEqual(json.loads(cmd[1]), processes.web_command("0.0.0.0:8000"))


class ComposeFileTests(SimpleTestCase):
    def test_no_secret_is_written_in_the_file_and_the_env_file_is_not_committed(self) -> None:
        text = (ROOT / "docker-compose.yml").read_text()
        self.assertNotRegex(text, r"POSTGRES_PASSWORD: (?!\$\{)")
        self.assertNotRegex(text, r"postgres://[^:]+:(?!\$\{)[^@]+@")
        self.assertIn(".env", (ROOT / ".gitignore").read_text().split())
        # Every variable the file needs is explained in the example, which is committed.
        example = (ROOT / ".env.example").read_text()
        for variable in set(re.findall(r"(?<!\$)\$\{(\w+)", text)):
            self.assertRegex(example, rf"(?m)^{variable}=", variable)
        self.assertRegex(example, r"(?m)^DJANGO_SECRET_KEY=$")  # no value given away


# How settings modules read a variable (project/settings/environment.py, and os.environ).
READER = (
    r"(?:env\.\w+|rate|days_or_off|choice|secret_key|signing_key|host_names|header_and_value"
    r"|addresses|environ\.get|_stack_secret)"
)


class EnvironmentExampleTests(SimpleTestCase):
    def test_every_variable_the_settings_read_is_listed_in_the_example(self) -> None:
        read = set()
        for folder in ("project", "relay_app", "ops"):
            for module in (ROOT / folder).rglob("*.py"):
                text = module.read_text()
                read |= set(re.findall(READER + r'\(\s*"([A-Z][A-Z0-9_]+)"', text))
                read |= set(re.findall(r'environ\[\s*"([A-Z][A-Z0-9_]+)"\s*\]', text))
                read |= set(re.findall(r'_VARIABLE = "([A-Z][A-Z0-9_]+)"', text))
        listed = set(
            re.findall(r"(?m)^#? ?([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text())
        )
        self.assertLessEqual(read - {"DJANGO_SETTINGS_MODULE"}, listed, read - listed)


class ProxyTimeoutTests(SimpleTestCase):
    def test_a_stream_beats_less_often_than_the_proxy_waits_for_a_reader(self) -> None:
        # Data arriving from the web server restarts nginx's send_timeout: heartbeats more
        # frequent than it would keep a client that reads nothing connected for as long as
        # the proxy's buffers take them.
        heartbeat = re.search(
            r'"RELAY_EVENTS_HEARTBEAT_SECONDS", default=([\d.]+)',
            (ROOT / "project" / "settings" / "api.py").read_text(),
        )
        assert heartbeat
        self.assertGreater(float(heartbeat[1]), nginx_seconds("send_timeout"))


def pins(path: Path) -> dict[str, str]:
    """``name: version`` of every ``name==version`` line of a requirements file, names
    normalised as pip does."""
    found = re.findall(r"(?m)^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;\\]+)", path.read_text())
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in found}


class LockTests(SimpleTestCase):
    def test_each_lock_holds_its_requirements_pins_with_hashes(self) -> None:
        for name in ("requirements", "requirements-dev"):
            with self.subTest(name):
                lock = (ROOT / f"{name}.lock").read_text()
                locked = pins(ROOT / f"{name}.lock")
                wanted = pins(ROOT / f"{name}.txt")
                if name == "requirements-dev":
                    wanted |= pins(ROOT / "requirements.txt")
                stale = {p: v for p, v in wanted.items() if locked.get(p) != v}
                self.assertEqual(stale, {}, f"{name}.lock is stale: run make lock")
                self.assertEqual(lock.count("=="), len(locked))
                self.assertGreaterEqual(lock.count("--hash=sha256:"), len(locked))

    def test_the_image_installs_the_runtime_as_the_development_lock_has_it(self) -> None:
        runtime, development = (
            pins(ROOT / "requirements.lock"),
            pins(ROOT / "requirements-dev.lock"),
        )
        differ = {p: (v, development.get(p)) for p, v in runtime.items() if development.get(p) != v}
        self.assertEqual(differ, {})
