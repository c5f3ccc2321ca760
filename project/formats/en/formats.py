"""Date formats for English (``FORMAT_MODULE_PATH``): times to the second, shorter than
Django's "Jan. 5, 2026, 3:04 p.m.", in the admin's lists and pages."""

DATETIME_FORMAT = "Y-m-d H:i:s"
