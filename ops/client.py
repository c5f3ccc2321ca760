"""How the operations tools (demo, bench, chaos) sign in to the relay's API, as a user's
program would: with an API token that ``manage.py create_api_token`` printed. Their HTTP
client is the product's (``relay_app/integrations/relay_api.py``)."""

import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

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


def web_url(path: str) -> str:
    """The URL of ``path`` on the stack's web server: https:// where it serves HTTPS."""
    from django.conf import settings

    scheme = "https" if settings.HTTP_TLS_CERT_FILE else "http"
    return f"{scheme}://{settings.HTTP_ADDRESS}{path}"


def issue_token(username: str, *, name: str, env: Mapping[str, str] | None = None) -> str:
    """A new API token for ``username``, as a script gets one: the last line of
    ``manage.py create_api_token``, which also creates the user if missing."""
    return manage(["create_api_token", username, "--name", name], env=env).splitlines()[-1]


def revoke_token(token: str, *, env: Mapping[str, str] | None = None) -> None:
    """Revoke a token made by ``issue_token`` (by its first characters, never its whole text)."""
    from relay_app.services.tokens import SHOWN_CHARACTERS

    manage(["revoke_api_tokens", "--prefix", token[:SHOWN_CHARACTERS]], env=env)


def manage(
    args: list[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    show: bool = False,
) -> str:
    """``manage.py ARGS`` in the repository, with ``env`` (else this tool's environment): its
    output, or with ``show`` its output shown as it comes; an error saying why if it fails."""
    run = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=dict(env) if env is not None else None,
        capture_output=not show,
        text=True,
        timeout=timeout,
        check=False,
    )
    if run.returncode != 0:
        why = (run.stderr or run.stdout or f"exit status {run.returncode}").strip()
        raise RuntimeError(f"manage.py {args[0]} failed: {why}")
    return (run.stdout or "").strip()
