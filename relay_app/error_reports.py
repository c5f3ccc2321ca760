"""What an error report (Django's DEBUG page, an error e-mail) may show of the settings."""

import re
from typing import Any

from django.views.debug import SafeExceptionReporterFilter

# "scheme://user:password@host": the password part, wherever such a URL appears in a value.
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.\-]*://[^:/@\s]*):[^@/\s]*@", re.IGNORECASE)


def hide_url_passwords(text: str, substitute: str) -> str:
    """``text`` with the password of every URL in it replaced by ``substitute``."""
    return _URL_PASSWORD.sub(lambda match: f"{match['head']}:{substitute}@", text)


class CredentialHidingFilter(SafeExceptionReporterFilter):
    """Django's filter, which hides settings named like a secret (``*PASSWORD*``, ``*KEY*``),
    and also the password inside any URL, whatever its setting is called.

    ``CELERY_BROKER_URL`` or ``DATABASE_URL`` carry a password in their value, not their
    name; Django's filter alone printed them whole on the DEBUG page.
    """

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        cleansed = super().cleanse_setting(key, value)
        if isinstance(cleansed, str):  # a lazy string too: str() makes it a plain one
            return hide_url_passwords(str(cleansed), self.cleansed_substitute)
        return cleansed
