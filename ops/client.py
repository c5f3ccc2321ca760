"""The relay's HTTP API as the operations tools (demo, bench, chaos) call it."""

import http.client
import json
from typing import Any


def post_message(connection: http.client.HTTPConnection, message: str) -> tuple[int, Any]:
    """``POST /api/relay/`` with ``message``; the status and the decoded JSON body.

    Raises ``OSError``, ``http.client.HTTPException`` or ``ValueError`` (a body that is not
    JSON) for the caller to count as "no answer".
    """
    connection.request(
        "POST",
        "/api/relay/",
        json.dumps({"message": message}),
        {"Content-Type": "application/json"},
    )
    response = connection.getresponse()
    raw = response.read()
    return response.status, json.loads(raw) if raw else None
