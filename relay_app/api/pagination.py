"""Pages of API lists."""

from typing import Any

from django.core.paginator import Paginator
from rest_framework import pagination
from rest_framework.request import Request
from rest_framework.views import APIView


class PageNumberPagination(pagination.PageNumberPagination):
    """DRF's page numbers (``?page=2``), strictly: one number from 1, as the schema says.

    DRF reads an empty ``?page=`` as page 1, a repeated one as its last value, and ``last``
    as the last page; here each of those is an invalid page (404), like ``?page=0``.
    """

    def get_page_number(self, request: Request, paginator: Paginator) -> Any:
        pages = request.query_params.getlist(self.page_query_param)
        if not pages:
            return 1
        return pages[0] if len(pages) == 1 else "repeated"

    def get_schema_operation_parameters(self, view: APIView) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_query_param:
                parameter["schema"]["minimum"] = 1
        return parameters
