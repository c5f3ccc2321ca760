"""The Docker image and the compose file: production settings, no root, no secrets in git."""

import re
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings
from django.test import SimpleTestCase

ROOT = Path(settings.BASE_DIR)


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


class DockerfileTests(SimpleTestCase):
    def test_the_image_runs_as_a_user_without_privileges_with_runtime_requirements_only(
        self,
    ) -> None:
        dockerfile = (ROOT / "Dockerfile").read_text()
        users = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
        self.assertTrue(users, "no USER instruction: the image would run as root")
        self.assertNotIn(users[-1], ("root", "0"))
        self.assertIn("pip install -r requirements.txt", dockerfile)
        self.assertNotIn("requirements-dev", dockerfile)
        self.assertIn("DJANGO_SETTINGS_MODULE=project.settings.production", dockerfile)
        runtime = (ROOT / "requirements.txt").read_text()
        for tool in ("ruff", "mypy", "playwright", "schemathesis", "matplotlib", "pip-audit"):
            self.assertNotRegex(runtime, rf"(?m)^{tool}\b", f"{tool} is not needed at run time")

    def test_dockerignore_keeps_the_environment_data_history_and_secrets_out(self) -> None:
        ignored = set((ROOT / ".dockerignore").read_text().split())
        self.assertLessEqual({".venv/", "var/", ".git/", ".env"}, ignored)


class ComposeTests(SimpleTestCase):
    def relay_services(self) -> dict[str, Any]:
        return {
            name: service
            for name, service in compose()["services"].items()
            if service.get("build") == "."
        }

    def test_the_relay_runs_production_settings_with_secrets_from_an_env_file(self) -> None:
        services = self.relay_services()
        self.assertEqual(set(services), {"migrate", "grpc", "worker", "web"})
        for name, service in services.items():
            with self.subTest(name):
                environment = service["environment"]
                self.assertEqual(
                    environment["DJANGO_SETTINGS_MODULE"], "project.settings.production"
                )
                self.assertEqual(service["env_file"], ".env")
                self.assertNotIn("DJANGO_SECRET_KEY", environment)

    def test_only_the_web_port_is_published(self) -> None:
        published = {
            name: service["ports"]
            for name, service in compose()["services"].items()
            if "ports" in service
        }
        self.assertEqual(published, {"web": ["127.0.0.1:8000:8000"]})

    def test_no_secret_is_written_in_the_file_and_the_env_file_is_not_committed(self) -> None:
        text = (ROOT / "docker-compose.yml").read_text()
        self.assertNotRegex(text, r"POSTGRES_PASSWORD: (?!\$\{)")
        self.assertNotRegex(text, r"postgres://[^:]+:(?!\$\{)[^@]+@")
        self.assertIn(".env", (ROOT / ".gitignore").read_text().split())
        # Every variable the file needs is explained in the example, which is committed.
        example = (ROOT / ".env.example").read_text()
        for variable in set(re.findall(r"\$\{(\w+)", text)):
            self.assertRegex(example, rf"(?m)^{variable}=", variable)
        self.assertRegex(example, r"(?m)^DJANGO_SECRET_KEY=$")  # no value given away
