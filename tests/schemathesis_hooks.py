"""Schemathesis hooks for ``tests/integration/test_openapi.py`` (through SCHEMATHESIS_HOOKS)."""

from typing import Any
from urllib.parse import urlencode

import schemathesis

# The proxy answers a request line longer than 4 kB itself (414) before Django sees the
# request: such a case tests the web server's limit, not this API.
MAX_QUERY_BYTES = 2000


@schemathesis.hook
def filter_query(context: schemathesis.HookContext, query: dict[str, Any] | None) -> bool:
    return query is None or len(urlencode(query, doseq=True)) <= MAX_QUERY_BYTES


# The proxy in front of the web server gives a request without an Idempotency-Key, or with an
# empty one, a key of its own (ops/nginx.conf.template): an empty key never reaches the API.
@schemathesis.hook
def filter_headers(context: schemathesis.HookContext, headers: dict[str, Any] | None) -> bool:
    key = (headers or {}).get("Idempotency-Key")
    return key is None or bool(str(key).strip())
