"""The relay's HTTP API as the operations tools (demo, bench, chaos) call it: as a user's
program would, with an API token that ``manage.py create_api_token`` printed."""

import http.client
import json
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Credentials:
    """How a tool signs its requests.

    ``behind_tls_proxy``: the stack runs production settings, which redirect plain HTTP to
    HTTPS; the tool then speaks as the TLS-terminating proxy in front of it would, with
    ``X-Forwarded-Proto: https`` (the stack trusts that header: DJANGO_SECURE_PROXY_SSL_HEADER).
    """

    token: str
    behind_tls_proxy: bool = False

    def headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"}
        if self.behind_tls_proxy:
            headers["X-Forwarded-Proto"] = "https"
        return headers


def web_url(path: str) -> str:
    """The URL of ``path`` on the stack's web server: https:// where it serves HTTPS."""
    from django.conf import settings

    scheme = "https" if settings.HTTP_TLS_CERT_FILE else "http"
    return f"{scheme}://{settings.HTTP_ADDRESS}{path}"


def web_connection(*, timeout: float) -> http.client.HTTPConnection:
    """A connection to the stack's web server; over HTTPS it verifies the server's
    certificate against HTTP_TLS_CA_FILE (the secure profile's CA)."""
    from django.conf import settings

    from relay_app.integrations.relay_api import connect

    return connect(web_url(""), timeout=timeout, cafile=settings.HTTP_TLS_CA_FILE)


def issue_token(
    username: str, *, name: str, env: Mapping[str, str] | None = None, timeout: float = 120
) -> str:
    """A new API token for ``username``, as a script gets one: the last line of
    ``manage.py create_api_token``, which also creates the user if missing."""
    return _manage(["create_api_token", username, "--name", name], env, timeout).splitlines()[-1]


def revoke_token(token: str, *, env: Mapping[str, str] | None = None, timeout: float = 120) -> None:
    """Revoke a token made by ``issue_token`` (by its first characters, never its whole text)."""
    from relay_app.services.tokens import SHOWN_CHARACTERS

    _manage(["revoke_api_tokens", "--prefix", token[:SHOWN_CHARACTERS]], env, timeout)


def _manage(args: list[str], env: Mapping[str, str] | None, timeout: float) -> str:
    run = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if run.returncode != 0:
        raise RuntimeError(f"manage.py {args[0]} failed: {(run.stderr or run.stdout).strip()}")
    return run.stdout.strip()


@dataclass(frozen=True)
class Reply:
    """One answer of ``POST /api/relay/`` as it came: status, headers, raw body.

    For callers that class answers by more than their JSON: the bench's overload level needs
    ``Retry-After``, and takes a body that is not JSON (a 503 from a proxy) as an answer too.
    """

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        """The decoded JSON body (None when empty); ``ValueError`` when it is not JSON."""
        return json.loads(self.body) if self.body else None


def send_message(
    connection: http.client.HTTPConnection, message: str, credentials: Credentials
) -> Reply:
    """``POST /api/relay/`` with ``message``; the answer undecoded, with its headers.

    Raises ``OSError`` or ``http.client.HTTPException`` when there is no answer.
    """
    connection.request(
        "POST",
        "/api/relay/",
        json.dumps({"message": message}),
        {"Content-Type": "application/json", **credentials.headers()},
    )
    response = connection.getresponse()
    return Reply(response.status, response.headers, response.read())


def post_message(
    connection: http.client.HTTPConnection, message: str, credentials: Credentials
) -> tuple[int, Any]:
    """``POST /api/relay/`` with ``message``; the status and the decoded JSON body.

    Raises ``OSError``, ``http.client.HTTPException`` or ``ValueError`` (a body that is not
    JSON) for the caller to count as "no answer".
    """
    reply = send_message(connection, message, credentials)
    return reply.status, reply.json()
