"""Schemathesis hooks for ``tests/integration/test_openapi.py`` (through SCHEMATHESIS_HOOKS)."""

from typing import Any
from urllib.parse import urlencode

import schemathesis

# gunicorn answers a request line longer than 4094 bytes itself, with an HTML 414, before
# Django sees the request: such a case tests the web server's limit, not this API.
MAX_QUERY_BYTES = 2000


@schemathesis.hook
def filter_query(context: schemathesis.HookContext, query: dict[str, Any] | None) -> bool:
    return query is None or len(urlencode(query, doseq=True)) <= MAX_QUERY_BYTES
