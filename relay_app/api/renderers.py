"""The browsable API, with an HTML form that posts JSON to a view that only accepts JSON."""

from collections.abc import Mapping
from typing import Any

from django.template.loader import render_to_string
from django.utils.safestring import SafeString
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer
from rest_framework.request import Request, override_method
from rest_framework.views import APIView


class JSONFormBrowsableAPIRenderer(BrowsableAPIRenderer):
    """DRF's browsable API whose POST form has one box per field and sends them as JSON.

    DRF only draws an HTML form for views that parse forms; the relay parses JSON alone (a
    form body gets 415). This form carries the content type and the JSON body the way DRF's
    own "Raw data" tab does, and ``relay_app/json-form.js`` writes that body from the fields
    as a person types, so the JSON API stays strict.

    A person who opens such a view in a browser (a GET, which the view answers 405) gets the
    form as the page, with a 200; the request and response boxes, which would show that 405,
    are hidden (``relay_app/api/json_form_page.html``). A program's GET still gets the 405.
    """

    template = "relay_app/api/json_form_page.html"

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> Any:
        context = renderer_context or {}
        request, response = context.get("request"), context.get("response")
        form_page = False
        if (
            request is not None
            and response is not None
            and request.method == "GET"
            and response.status_code == status.HTTP_405_METHOD_NOT_ALLOWED
        ):
            response.status_code = status.HTTP_200_OK
            data, form_page = None, True
        return super().render(data, accepted_media_type, {**context, "form_page": form_page})

    def get_context(
        self, data: Any, accepted_media_type: str | None, renderer_context: Mapping[str, Any]
    ) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context(data, accepted_media_type, renderer_context)
        context["form_page"] = renderer_context["form_page"]
        return context

    def get_rendered_html_form(
        self, data: Any, view: APIView, method: str, request: Request
    ) -> Any:
        form = super().get_rendered_html_form(data, view, method, request)
        serializer_class = getattr(view, "serializer_class", None)
        if method != "POST" or form is not None or serializer_class is None:
            return form
        posted = self._posted(request)
        with override_method(view, request, method) as overridden:
            if not self.show_form_for_method(view, method, overridden, None):
                return None
        # Bound to what was posted, the form shows it again with the reasons it was refused.
        serializer = serializer_class(data=posted) if posted else serializer_class()
        fields = self.render_form_for_serializer(serializer)
        return SafeString(render_to_string("relay_app/api/json_form.html", {"fields": fields}))

    @staticmethod
    def _posted(request: Request) -> dict[str, Any]:
        """What the person posted, to show it in the form again; nothing if it was not JSON."""
        if request.method != "POST":
            return {}
        try:
            posted = request.data
        except APIException:
            return {}
        return dict(posted) if isinstance(posted, dict) else {}


class PlainTextRenderer(BaseRenderer):
    """``text/plain`` for people and probes that ask for it: each field on a line of its own
    (``status: ok``), a nested one indented under its name."""

    media_type = "text/plain"
    format = "txt"
    charset = "utf-8"

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        return "".join(_lines(data)).encode()


def _lines(data: Any, indent: str = "") -> list[str]:
    if not isinstance(data, Mapping):
        return [f"{indent}{data}\n"]
    lines: list[str] = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            lines += [f"{indent}{key}:\n", *_lines(value, indent + "  ")]
        else:
            lines.append(f"{indent}{key}: {value}\n")
    return lines
