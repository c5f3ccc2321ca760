"""Thin views: validate, call one service or selector, serialize the result."""

from typing import Any

from django.http import Http404
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..models import Transaction
from ..selectors import transaction_get, transaction_list
from ..services.health import health_check
from ..services.relay import relay_message
from .serializers import (
    RelayInputSerializer,
    TransactionListSerializer,
    TransactionSerializer,
    idempotency_key,
)

# How a transaction answers the client. Pending only happens to a repeated Idempotency-Key
# whose first request never finished.
HTTP_STATUS = {
    Transaction.Status.SUCCEEDED: status.HTTP_200_OK,
    Transaction.Status.FAILED: status.HTTP_503_SERVICE_UNAVAILABLE,
    Transaction.Status.TIMED_OUT: status.HTTP_504_GATEWAY_TIMEOUT,
    Transaction.Status.PENDING: status.HTTP_504_GATEWAY_TIMEOUT,
}
SEED_MESSAGE = "hello world"


class RelayView(APIView):
    """Carry a message through the relay and answer with the final uppercase text."""

    def post(self, request: Request) -> Response:
        key = idempotency_key(request.headers)
        serializer = RelayInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        transaction = relay_message(
            message=serializer.validated_data["message"], idempotency_key=key
        )
        body: dict[str, Any] = dict(TransactionSerializer(transaction).data)
        if transaction.status == Transaction.Status.PENDING:
            body = {"detail": "the first request with this Idempotency-Key has not finished"}
            body |= TransactionSerializer(transaction).data
        elif transaction.status != Transaction.Status.SUCCEEDED:
            body = {"detail": transaction.error, **body}
        return Response(body, status=HTTP_STATUS[Transaction.Status(transaction.status)])


class SeedRelayView(APIView):
    """The seed's endpoint: relays "hello world", answers the final text as a JSON string."""

    def get(self, request: Request) -> Response:
        transaction = relay_message(message=SEED_MESSAGE)
        code = HTTP_STATUS[Transaction.Status(transaction.status)]
        if transaction.status == Transaction.Status.SUCCEEDED:
            return Response(transaction.final_message, status=code)
        if transaction.status == Transaction.Status.TIMED_OUT:
            return Response("Error:Timeout request", status=code)  # the seed's own answer
        return Response(f"Error:{transaction.error}", status=code)


class TransactionListView(generics.ListAPIView):
    """Transactions, newest first; ``?status=`` filters."""

    serializer_class = TransactionListSerializer

    def get_queryset(self) -> Any:
        wanted = self.request.query_params.get("status")
        if wanted is not None and wanted not in Transaction.Status.values:
            raise serializers.ValidationError(
                {"status": f"must be one of {', '.join(Transaction.Status.values)}"}
            )
        return transaction_list(status=wanted)


class TransactionDetailView(APIView):
    """One transaction with its hops in order."""

    def get(self, request: Request, transaction_id: str) -> Response:
        try:
            transaction = transaction_get(transaction_id=transaction_id)
        except Transaction.DoesNotExist as exc:
            raise Http404(f"no transaction {transaction_id}") from exc
        return Response(TransactionSerializer(transaction).data)


class HealthView(APIView):
    """200 when every dependency answers, else 503 naming the ones that do not."""

    def get(self, request: Request) -> Response:
        checks = health_check()
        healthy = all(result == "ok" for result in checks.values())
        return Response(
            {"status": "ok" if healthy else "unavailable", "checks": checks},
            status=status.HTTP_200_OK if healthy else status.HTTP_503_SERVICE_UNAVAILABLE,
        )
