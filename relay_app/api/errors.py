"""DRF exception handler: every error a client can cause or meet is JSON with a reason."""

import logging
from typing import Any

from django.db import DatabaseError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from ..errors import RelayError

logger = logging.getLogger(__name__)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus 503 for a dependency (the database included) that is down."""
    response = drf_exception_handler(exc, context)
    if response is not None:
        return response
    if isinstance(exc, RelayError):
        return Response({"detail": str(exc)}, status=exc.status_code)
    if isinstance(exc, DatabaseError):
        logger.error("database unavailable: %s", exc)
        return Response({"detail": f"the database is unavailable: {exc}"}, status=503)
    return None
