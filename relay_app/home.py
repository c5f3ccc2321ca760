"""The landing page at ``/``: what the relay is, and where each of its parts lives.

Open to anyone, so it shows nothing a visitor could not learn from the code: no
transaction, no setting beyond who can log in (``relay_app/templatetags/relay_pages.py``).
"""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from .hops import expected_final_message

EXAMPLE = "hello world"


@require_safe
def home_page(request: HttpRequest) -> HttpResponse:
    """The page, with what "hello world" becomes through the hops."""
    return render(
        request,
        "relay_app/home.html",
        {
            "example": EXAMPLE,
            "example_answer": expected_final_message(EXAMPLE),
        },
    )
