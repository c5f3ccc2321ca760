"""Thin views: validate, call one service or selector, serialize the result."""

from typing import Any

from django.conf import settings
from django.http import Http404, HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from drf_spectacular.views import SpectacularAPIView
from rest_framework import generics, serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny, IsAdminUser
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from ..comparison import compare
from ..hops import Stage
from ..metrics import exposition
from ..models import AuditEntry, BulkJob, BulkJobItem, Transaction
from ..selectors import (
    bulk_job_get,
    bulk_job_items,
    transaction_filter,
    transaction_get,
    transaction_list,
)
from ..services.bulk import (
    BulkJobNotStarted,
    bulk_dry_run,
    bulk_job_cancel,
    bulk_job_start,
)
from ..services.cancel import transaction_cancel_for
from ..services.health import readiness
from ..services.relay import relay_await, relay_message, relay_message_async
from ..services.rerun import transaction_rerun
from .admission import DEADLINE_KEY
from .authentication import BearerTokenAuthentication, ScraperTokenAuthentication
from .errors import unlogged
from .events import event_stream, last_event_id
from .negotiation import AcceptHeaderOnly
from .pagination import PageNumberPagination
from .permissions import (
    AsyncRelayNeedsCredentials,
    CanReadApiDocs,
    CanReadMetrics,
    CanRelay,
    NoCrossSiteSession,
)
from .renderers import JSONFormBrowsableAPIRenderer, PlainTextRenderer
from .schema import IDEMPOTENCY_KEY_PARAMETER, LAST_EVENT_ID_PARAMETER, PREFER_PARAMETER
from .serializers import (
    RESPOND_ASYNC,
    ApiRootSerializer,
    BulkDryRunSerializer,
    BulkFilterSerializer,
    BulkInputSerializer,
    BulkJobDetailSerializer,
    BulkJobItemSerializer,
    BulkJobSerializer,
    CancelInputSerializer,
    ComparisonSerializer,
    ErrorSerializer,
    HealthSerializer,
    LivenessSerializer,
    RelayAcceptedSerializer,
    RelayInputSerializer,
    RerunInputSerializer,
    ServerSentEventSerializer,
    TransactionFailureSerializer,
    TransactionListSerializer,
    TransactionSerializer,
    comparison_representation,
    idempotency_key,
    prefers_async,
)
from .throttling import RelayThrottle

# How a transaction answers the client. Pending only happens to a repeated Idempotency-Key
# whose first request never finished. Cancelled: 409, the transaction's state (its owner or
# staff cancelled it) conflicts with the request to finish it; the body says who and when.
HTTP_STATUS = {
    Transaction.Status.SUCCEEDED: status.HTTP_200_OK,
    Transaction.Status.FAILED: status.HTTP_503_SERVICE_UNAVAILABLE,
    Transaction.Status.TIMED_OUT: status.HTTP_504_GATEWAY_TIMEOUT,
    Transaction.Status.PENDING: status.HTTP_504_GATEWAY_TIMEOUT,
    Transaction.Status.CANCELLED: status.HTTP_409_CONFLICT,
}
ORIGINAL_MESSAGE = "hello world"

# Views whose representation the Accept header alone chooses have no ?format=.
NO_FORMAT_PARAMETER = OpenApiParameter("format", exclude=True)
# The error bodies, as the schema describes them.
INVALID = OpenApiResponse(ErrorSerializer, "Invalid input: `errors` names each field at fault.")
NOT_FOUND = OpenApiResponse(ErrorSerializer, "No such transaction or page.")
DATABASE_DOWN = OpenApiResponse(ErrorSerializer, "The database is unavailable.")
UNAUTHENTICATED = OpenApiResponse(
    ErrorSerializer,
    "No credentials, or an invalid or revoked token: send `Authorization: Bearer <token>`.",
)
TOO_LARGE = OpenApiResponse(ErrorSerializer, "The request body is larger than any message.")
THROTTLED = OpenApiResponse(
    ErrorSerializer, "Over the rate: wait as many seconds as `Retry-After` says."
)
# A transaction that was recorded and then failed answers its record; when the database
# itself is down there is none to answer, only the reason.
RELAY_FAILURE = PolymorphicProxySerializer(
    component_name="RelayFailure",
    serializers=[TransactionFailureSerializer, ErrorSerializer],
    resource_type_field_name=None,
)


def _owner(request: Request) -> Any:
    """Who a new transaction belongs to: the signed-in user, or nobody."""
    return request.user if request.user.is_authenticated else None


def _deadline(request: Request) -> float | None:
    """The relay's deadline, counted from the request's arrival (set at admission)."""
    deadline = request.META.get(DEADLINE_KEY)
    return float(deadline) if deadline is not None else None


class ApiRootView(APIView):
    """The relay's HTTP interface: follow a link to relay a message or browse transactions."""

    permission_classes = [CanReadApiDocs]

    @extend_schema(tags=["service"], responses={200: ApiRootSerializer, 401: UNAUTHENTICATED})
    def get(self, request: Request) -> Response:
        links = {
            "relay": reverse("relay", request=request),
            "transactions": reverse("transaction-list", request=request),
            "schema": reverse("schema", request=request),
            "docs": reverse("docs", request=request),
            "health": reverse("healthz", request=request),
            "ready": reverse("readyz", request=request),
            "seed": reverse("original-relay", request=request),
            "admin": reverse("admin:index", request=request),
            "live": reverse("live", request=request),
        }
        return Response(ApiRootSerializer(links).data)


class RelayView(generics.GenericAPIView):
    """Carry a message through the relay and answer with the final uppercase text.

    Type a message in the form below and press POST: the answer shows the transaction, its
    eight hops and the final text. Clients send a JSON object: `{"message": "hello world"}`.
    With `Prefer: respond-async` the answer is 202 at once, with the pending transaction:
    poll its `url` (also `Location`) or follow its `events` stream; that needs a token or a
    session, since only its owner can read them.
    """

    serializer_class = RelayInputSerializer
    renderer_classes = [JSONRenderer, JSONFormBrowsableAPIRenderer]
    permission_classes = [CanRelay, AsyncRelayNeedsCredentials]
    throttle_classes = [RelayThrottle]

    @extend_schema(
        tags=["relay"],
        request=RelayInputSerializer,
        parameters=[IDEMPOTENCY_KEY_PARAMETER, PREFER_PARAMETER],
        examples=[
            OpenApiExample("hello world", value={"message": "hello world"}, request_only=True)
        ],
        responses={
            200: OpenApiResponse(
                TransactionSerializer, "Relayed: `message` is the final uppercase text."
            ),
            202: OpenApiResponse(
                RelayAcceptedSerializer,
                "`Prefer: respond-async`: accepted and pending (or, for a repeated"
                " Idempotency-Key, that transaction still pending). Poll `Location` (`url`) or"
                " follow `events`. Once settled, a repeated request answers as without"
                " the preference: 200, 503 or 504.",
            ),
            400: INVALID,
            401: OpenApiResponse(
                ErrorSerializer,
                f"{UNAUTHENTICATED.description} An asynchronous relay (`Prefer: respond-async`)"
                " always needs one, even where anonymous relays are allowed: only its owner"
                " can follow it.",
            ),
            413: TOO_LARGE,
            415: OpenApiResponse(ErrorSerializer, "The body is not `application/json`."),
            409: OpenApiResponse(
                TransactionFailureSerializer,
                "Cancelled while the request waited (`POST /api/transactions/<id>/cancel/`):"
                " answered at once, with `status` `cancelled`, `cancelled_by` and"
                " `cancelled_at`.",
            ),
            422: OpenApiResponse(
                ErrorSerializer, "The Idempotency-Key was already used with another message."
            ),
            429: THROTTLED,
            503: OpenApiResponse(
                RELAY_FAILURE,
                "A dependency is down (Kafka, Redis, the gRPC server or the database);"
                " `detail` names it, and after how many attempts (each in its hop's"
                " `attempts`), or why no further one was made. Or the relay is at capacity:"
                " nothing was recorded; wait as many seconds as `Retry-After` says.",
            ),
            504: OpenApiResponse(
                TransactionFailureSerializer,
                "The deadline passed; `failed_stage` is the hop it was waiting on.",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        key = idempotency_key(request.headers)
        serializer = RelayInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        respond_async = prefers_async(request.headers)
        transaction = (relay_message_async if respond_async else relay_message)(
            message=serializer.validated_data["message"],
            owner=_owner(request),
            idempotency_key=key,
            deadline=_deadline(request),
        )
        if respond_async and transaction.status == Transaction.Status.PENDING:
            return _accepted(request, transaction)
        body: dict[str, Any] = dict(TransactionSerializer(transaction).data)
        if transaction.status == Transaction.Status.PENDING:
            body = {"detail": "the first request with this Idempotency-Key has not finished"}
            body |= TransactionSerializer(transaction).data
        elif transaction.status != Transaction.Status.SUCCEEDED:
            body = {"detail": transaction.error, **body}
        return unlogged(Response(body, status=HTTP_STATUS[Transaction.Status(transaction.status)]))


def _accepted(request: Request, transaction: Transaction) -> Response:
    """202: the pending transaction, where to poll it and where to follow it."""
    url = reverse("transaction-detail", args=[transaction.id], request=request)
    events = reverse("transaction-events", args=[transaction.id], request=request)
    body = {"url": url, "events": events, **TransactionSerializer(transaction).data}
    return Response(
        body,
        status=status.HTTP_202_ACCEPTED,
        headers={"Location": url, "Preference-Applied": RESPOND_ASYNC},
    )


class OriginalRelayView(APIView):
    """The original example's endpoint: relays "hello world", answers the final text as a JSON
    string."""

    permission_classes = [CanRelay, NoCrossSiteSession]
    throttle_classes = [RelayThrottle]

    @extend_schema(
        tags=["relay"],
        responses={
            200: OpenApiResponse(OpenApiTypes.STR, 'The final text of "hello world".'),
            401: UNAUTHENTICATED,
            429: THROTTLED,
            503: OpenApiResponse(
                OpenApiTypes.STR,
                '`"Error:<reason>"`: a dependency is down, or the relay is at capacity'
                " (then wait as `Retry-After` says).",
            ),
            504: OpenApiResponse(
                OpenApiTypes.STR, '`"Error:Timeout request"`, as the original example.'
            ),
            409: OpenApiResponse(OpenApiTypes.STR, '`"Error:cancelled by <user>"`.'),
        },
    )
    def get(self, request: Request) -> Response:
        transaction = relay_message(
            message=ORIGINAL_MESSAGE, owner=_owner(request), deadline=_deadline(request)
        )
        code = HTTP_STATUS[Transaction.Status(transaction.status)]
        if transaction.status == Transaction.Status.SUCCEEDED:
            return Response(transaction.final_message, status=code)
        if transaction.status == Transaction.Status.TIMED_OUT:
            return unlogged(
                Response("Error:Timeout request", status=code)
            )  # the original example's own
        return unlogged(Response(f"Error:{transaction.error}", status=code))


@extend_schema(
    tags=["transactions"],
    parameters=[
        OpenApiParameter(
            "status",
            OpenApiTypes.STR,
            enum=Transaction.Status.values,
            description="Only the transactions in this state.",
        )
    ],
    responses={
        200: TransactionListSerializer(many=True),
        400: INVALID,
        401: UNAUTHENTICATED,
        404: NOT_FOUND,
        503: DATABASE_DOWN,
    },
)
class TransactionListView(generics.ListAPIView):
    """Your transactions (staff: everyone's), newest first, 50 to a page.

    Add `?status=succeeded` (or `pending`, `failed`, `timed_out`, `cancelled`) to see only
    those.
    """

    serializer_class = TransactionListSerializer

    def get_queryset(self) -> Any:
        given = self.request.query_params.getlist("status")
        if len(given) > 1 or (given and given[0] not in Transaction.Status.values):
            raise serializers.ValidationError(
                {"status": f"must be one of {', '.join(Transaction.Status.values)}, given once"}
            )
        return transaction_list(viewer=self.request.user, status=given[0] if given else None)


class TransactionDetailView(APIView):
    """One of your transactions (staff: anyone's) with its hops in order."""

    @extend_schema(
        tags=["transactions"],
        responses={
            200: TransactionSerializer,
            401: UNAUTHENTICATED,
            404: NOT_FOUND,
            503: DATABASE_DOWN,
        },
    )
    def get(self, request: Request, transaction_id: str) -> Response:
        try:
            transaction = transaction_get(transaction_id=transaction_id, viewer=request.user)
        except Transaction.DoesNotExist as exc:
            # Another user's transaction is answered exactly like one that does not exist.
            raise Http404(f"no transaction {transaction_id}") from exc
        return Response(TransactionSerializer(transaction).data)


class TransactionCancelView(APIView):
    """Cancel one of your transactions (staff: anyone's) while it is pending.

    It ends `cancelled`, with who and when: no hop is recorded after, its tasks not yet run
    do nothing, a gRPC call in progress is cancelled, a client blocked on it gets 409 at
    once, and its event stream ends with `event: cancelled`. A transaction that has already
    ended is left as it is: 409. An optional `reason` goes into the audit trail with who and
    when.
    """

    @extend_schema(
        tags=["transactions"],
        request=CancelInputSerializer,
        responses={
            200: OpenApiResponse(
                TransactionSerializer, "Cancelled: the transaction, with `status` `cancelled`."
            ),
            401: UNAUTHENTICATED,
            400: INVALID,
            404: NOT_FOUND,
            409: OpenApiResponse(
                TransactionFailureSerializer,
                "It had already ended (`status` says how); nothing changed.",
            ),
            503: DATABASE_DOWN,
        },
    )
    def post(self, request: Request, transaction_id: str) -> Response:
        given = CancelInputSerializer(data=request.data or {})
        given.is_valid(raise_exception=True)
        try:
            transaction, cancelled = transaction_cancel_for(
                transaction_id=str(transaction_id),
                viewer=request.user,
                source=AuditEntry.Source.API,
                reason=given.validated_data["reason"],
            )
        except Transaction.DoesNotExist as exc:
            raise Http404(f"no transaction {transaction_id}") from exc
        body = dict(TransactionSerializer(transaction).data)
        if cancelled:
            return Response(body)
        detail = f"transaction {transaction_id} has already ended ({transaction.status})"
        return unlogged(Response({"detail": detail, **body}, status=status.HTTP_409_CONFLICT))


class TransactionRerunView(APIView):
    """Rerun one of your transactions that failed, timed out or was cancelled, from the hop
    it stopped at (staff: any finished transaction, from a hop they choose: `from_hop`).

    A new transaction, yours like the original, inherits the hops before that one unchanged
    (`inherited`, with their times and Kafka records) and runs the rest again; the original
    never changes. Answered as a relay is: once it has ended (200, 503, 504, 409), or at once
    with `Prefer: respond-async` (202, `Location`). The same `Idempotency-Key` again gives the
    same rerun. Refused with the reason: 409 (still pending; succeeded without `from_hop`),
    400 (a hop it cannot be rerun from), 403 (a hop other than the failed one, not staff).
    """

    @extend_schema(
        tags=["transactions"],
        request=RerunInputSerializer,
        parameters=[IDEMPOTENCY_KEY_PARAMETER, PREFER_PARAMETER],
        examples=[
            OpenApiExample(
                "from the hop that failed", value={"reason": "gRPC server back"}, request_only=True
            ),
        ],
        responses={
            200: OpenApiResponse(TransactionSerializer, "The rerun, succeeded."),
            202: OpenApiResponse(
                RelayAcceptedSerializer,
                "`Prefer: respond-async`: the rerun, pending (its inherited hops already"
                " there). Poll `Location` (`url`) or follow `events`.",
            ),
            400: OpenApiResponse(
                ErrorSerializer,
                "Invalid input, or a hop it cannot be rerun from (its input was never"
                " recorded); `detail` says why.",
            ),
            401: UNAUTHENTICATED,
            403: OpenApiResponse(
                ErrorSerializer,
                "Not staff, and `from_hop` is not the hop the transaction stopped at.",
            ),
            404: NOT_FOUND,
            409: OpenApiResponse(
                RELAY_FAILURE,
                "Refused, with the reason (`detail` alone): the transaction is still pending,"
                " or succeeded and no `from_hop` was given (staff only). Or the rerun was"
                " cancelled while the request waited (the rerun, `status` `cancelled`).",
            ),
            415: OpenApiResponse(ErrorSerializer, "The body is not `application/json`."),
            422: OpenApiResponse(
                ErrorSerializer, "The Idempotency-Key was already used for another request."
            ),
            503: OpenApiResponse(
                RELAY_FAILURE, "The rerun failed: a dependency is down (`detail` names it)."
            ),
            504: OpenApiResponse(
                TransactionFailureSerializer,
                "The rerun's deadline passed; `failed_stage` is the hop it was waiting on.",
            ),
        },
    )
    def post(self, request: Request, transaction_id: str) -> Response:
        key = idempotency_key(request.headers)
        serializer = RerunInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            original = transaction_get(transaction_id=str(transaction_id), viewer=request.user)
            rerun = transaction_rerun(
                original,
                user=request.user,
                from_hop=serializer.validated_data.get("from_hop"),
                idempotency_key=key,
                reason=serializer.validated_data.get("reason", ""),
            )
        except Transaction.DoesNotExist as exc:
            raise Http404(f"no transaction {transaction_id}") from exc
        if rerun.status == Transaction.Status.PENDING:
            if prefers_async(request.headers):
                return _accepted(request, rerun)
            rerun = relay_await(transaction=rerun)
        body: dict[str, Any] = dict(TransactionSerializer(rerun).data)
        if rerun.status != Transaction.Status.SUCCEEDED:
            body = {"detail": rerun.error or f"the rerun is {rerun.status}", **body}
        return unlogged(Response(body, status=HTTP_STATUS[Transaction.Status(rerun.status)]))


class TransactionCompareView(APIView):
    """Two of your transactions of one lineage (one reruns the other, or both rerun one)
    side by side, hop by hop: each hop's text (with `diff`, the differences by character),
    state, attempts, duration and Kafka record. Staff: anyone's. 409 if not of one lineage."""

    @extend_schema(
        tags=["transactions"],
        responses={
            200: ComparisonSerializer,
            401: UNAUTHENTICATED,
            404: NOT_FOUND,
            409: OpenApiResponse(ErrorSerializer, "Not of one lineage; `detail` says so."),
            503: DATABASE_DOWN,
        },
    )
    def get(self, request: Request, transaction_id: str, other_id: str) -> Response:
        try:
            left = transaction_get(transaction_id=str(transaction_id), viewer=request.user)
            right = transaction_get(transaction_id=str(other_id), viewer=request.user)
        except Transaction.DoesNotExist as exc:
            raise Http404("no such transaction") from exc
        return Response(comparison_representation(compare(left, right)))


class TransactionBulkView(APIView):
    """Cancel or rerun every one of your transactions (staff: anyone's) that a filter matches.

    A dry run first (`dry_run` is true unless you say otherwise): how many the filter
    matched, how many would be acted on with a sample of them, and the others with why they
    would be skipped (a pending transaction cannot be rerun, a finished one cannot be
    cancelled); nothing changes. With `"dry_run": false` and a `reason`, the action becomes a
    background job, answered at once (202) with its `url` to follow and its `cancel_url`;
    the job acts on the transactions one at a time at a rate shared by all bulk work.
    Only staff may filter by `owner` (400 for anyone else).
    """

    @extend_schema(
        tags=["transactions"],
        request=BulkInputSerializer,
        responses={
            200: OpenApiResponse(BulkDryRunSerializer, "The dry run: nothing was changed."),
            202: OpenApiResponse(BulkJobSerializer, "The job, started: follow its `url`."),
            400: INVALID,
            401: UNAUTHENTICATED,
            503: DATABASE_DOWN,
        },
    )
    def post(self, request: Request) -> Response:
        given = BulkInputSerializer(data=request.data, context={"staff": request.user.is_staff})
        given.is_valid(raise_exception=True)
        action = given.validated_data["action"]
        criteria = dict(given.validated_data.get("filter", {}))
        if "failed_hop" in criteria:
            criteria["failed_stage"] = Stage[criteria.pop("failed_hop").upper()]
        transactions = transaction_filter(viewer=request.user, **criteria)
        if given.validated_data["dry_run"]:
            dry_run = bulk_dry_run(action=action, transactions=transactions)
            return Response(BulkDryRunSerializer(dry_run).data)
        try:
            job = bulk_job_start(
                viewer=request.user,  # type: ignore[arg-type]  # signed in: the default permission
                action=action,
                transactions=transactions,
                filters=BulkFilterSerializer(given.validated_data.get("filter", {})).data,
                reason=given.validated_data["reason"],
                source=AuditEntry.Source.API,
            )
        except BulkJobNotStarted:
            return Response(
                {"detail": "the job could not be queued (Redis is unavailable); nothing was done"},
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
            )
        body = BulkJobSerializer(job, context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})


class BulkJobDetailView(APIView):
    """A bulk job you started (staff: anyone's): its status, its progress by outcome, and a
    page of its items with each one's outcome (`?outcome=skipped` for those alone)."""

    @extend_schema(
        tags=["transactions"],
        parameters=[
            OpenApiParameter("page", int, description="A page of the items, from 1."),
            OpenApiParameter("outcome", str, enum=BulkJobItem.Outcome.values),
        ],
        responses={
            200: BulkJobDetailSerializer,
            400: OpenApiResponse(ErrorSerializer, "An `outcome` that is none of them."),
            401: UNAUTHENTICATED,
            404: NOT_FOUND,
        },
    )
    def get(self, request: Request, job_id: str) -> Response:
        job = _bulk_job(request, job_id)
        outcome = request.query_params.get("outcome")
        if outcome is not None and outcome not in BulkJobItem.Outcome.values:
            raise serializers.ValidationError(
                {"outcome": f"must be one of {', '.join(BulkJobItem.Outcome.values)}"}
            )
        pages = PageNumberPagination()
        page = pages.paginate_queryset(bulk_job_items(job=job, outcome=outcome), request, self)
        items = pages.get_paginated_response(BulkJobItemSerializer(page, many=True).data).data
        context = {"request": request, "items": items}
        return Response(BulkJobDetailSerializer(job, context=context).data)


class BulkJobCancelView(APIView):
    """Stop a bulk job you started (staff: anyone's) before its next item: the items not
    reached end `not_run`, the one being acted on is finished. 409 if it had ended."""

    @extend_schema(
        tags=["transactions"],
        request=None,
        responses={
            200: BulkJobSerializer,
            401: UNAUTHENTICATED,
            404: NOT_FOUND,
            409: OpenApiResponse(BulkJobSerializer, "It had already ended; nothing changed."),
        },
    )
    def post(self, request: Request, job_id: str) -> Response:
        try:
            job, stopped = bulk_job_cancel(
                job_id=str(job_id), viewer=request.user, source=AuditEntry.Source.API
            )
        except BulkJob.DoesNotExist as exc:
            raise Http404(f"no bulk job {job_id}") from exc
        body = dict(BulkJobSerializer(job, context={"request": request}).data)
        if stopped:
            return Response(body)
        detail = f"bulk job {job_id} has already ended ({job.status})"
        return unlogged(Response({"detail": detail, **body}, status=status.HTTP_409_CONFLICT))


def _bulk_job(request: Request, job_id: str) -> BulkJob:
    """The job, if the request's user may see it; else 404, as for one that never existed."""
    try:
        return bulk_job_get(job_id=str(job_id), viewer=request.user)
    except BulkJob.DoesNotExist as exc:
        raise Http404(f"no bulk job {job_id}") from exc


class TransactionEventsView(APIView):
    """One of your transactions (staff: anyone's) as it happens, as Server-Sent Events.

    Each attempt of a hop that did not succeed as it ends (`event: attempt`), each hop as it
    is recorded (`event: hop`, `id:` its position 1-8, `data:` the hop as in the
    transaction's page, with its attempts), then `event: settled` with the whole transaction
    as `GET /api/transactions/<id>/` shows it (`event: cancelled` if it was cancelled); then
    the stream ends. A settled transaction's
    hops come at once. `: heartbeat` comments keep a quiet stream open; a transaction still
    pending shortly after its deadline is timed out, and the stream ends with that. A web
    server process holds a few streams of one user at once, and a few more in all: beyond,
    429 (wait as `Retry-After` says, or close one).
    """

    @extend_schema(
        tags=["transactions"],
        parameters=[LAST_EVENT_ID_PARAMETER],
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                ServerSentEventSerializer,
                "The events, ending with `event: settled` (or `cancelled`): `id: 3` /"
                " `event: hop` /"
                ' `data: {"position": 3, "stage": "kafka_consume_request", ...}`.',
            ),
            401: UNAUTHENTICATED,
            404: NOT_FOUND,
            429: OpenApiResponse(
                ErrorSerializer,
                "Too many event streams open, yours or in all: wait as many seconds as"
                " `Retry-After` says, or close one.",
            ),
            503: DATABASE_DOWN,
        },
    )
    def get(self, request: Request, transaction_id: str) -> StreamingHttpResponse:
        try:
            transaction_get(transaction_id=transaction_id, viewer=request.user)
        except Transaction.DoesNotExist as exc:
            raise Http404(f"no transaction {transaction_id}") from exc
        return event_stream(
            str(transaction_id),
            user_id=request.user.pk,
            after=last_event_id(request.headers),
            heartbeat_seconds=settings.RELAY_EVENTS_HEARTBEAT_SECONDS,
        )

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # EventSource asks for text/event-stream only: errors then still answer JSON.
        return super().perform_content_negotiation(request, force=True)


def accepts_openmetrics_only(accept: str) -> bool:
    """Whether an ``Accept`` header asks for OpenMetrics and not for the text format (which
    every scraper and person reading ``text/plain``, ``*/*`` or nothing gets)."""
    kinds = {part.split(";", 1)[0].strip().lower() for part in accept.split(",")}
    return "application/openmetrics-text" in kinds and not kinds & {"text/plain", "text/*", "*/*"}


class MetricsView(APIView):
    """The web server's metrics (staff, or the scraper's token): Prometheus's text format, or
    OpenMetrics to a client that asks for that alone."""

    authentication_classes = [
        ScraperTokenAuthentication,
        BearerTokenAuthentication,
        SessionAuthentication,
    ]
    permission_classes = [CanReadMetrics]

    @extend_schema(
        tags=["service"],
        responses={
            (200, "text/plain"): OpenApiResponse(
                OpenApiTypes.STR, "Prometheus's text format (to text/plain, */* or no Accept)."
            ),
            (200, "application/openmetrics-text"): OpenApiResponse(
                OpenApiTypes.STR, "OpenMetrics, to a client that asks for it alone."
            ),
            401: UNAUTHENTICATED,
            403: OpenApiResponse(ErrorSerializer, "Signed in, but not staff."),
        },
    )
    def get(self, request: Request) -> HttpResponse:
        openmetrics = accepts_openmetrics_only(request.headers.get("Accept", ""))
        body, content_type = exposition(openmetrics=openmetrics)
        return HttpResponse(body, content_type=content_type)

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # The body's format is chosen above; errors (401, 403) still answer JSON.
        return super().perform_content_negotiation(request, force=True)


class SchemaView(SpectacularAPIView):
    """This API's OpenAPI 3 schema, in YAML; in JSON with `?format=json` or
    `Accept: application/json`. The interactive docs are at `/api/docs/`."""

    # A browser asks for HTML first: it gets the browsable API's page with the schema on it
    # (the schema's own media types are files a browser would download). Any other Accept
    # gets one of those types; */* gets YAML.
    renderer_classes = [*SpectacularAPIView.renderer_classes, BrowsableAPIRenderer]

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        if isinstance(request.accepted_renderer, BrowsableAPIRenderer):
            del response["Content-Disposition"]  # a page to read, not a file to save
        return response


class StaffCheckView(APIView):
    """Whether the request's session or token is a staff user's: 204 if so, else 401 (signed
    out) or 403. The proxy asks it before it lets anyone into Flower, Celery's monitor."""

    authentication_classes = [BearerTokenAuthentication, SessionAuthentication]
    permission_classes = [IsAdminUser]

    @extend_schema(
        tags=["service"],
        responses={
            204: OpenApiResponse(description="A staff user."),
            401: UNAUTHENTICATED,
            403: OpenApiResponse(ErrorSerializer, "Signed in, but not staff."),
        },
    )
    def get(self, request: Request) -> Response:
        return Response(status=status.HTTP_204_NO_CONTENT)


class HealthView(APIView):
    """Liveness: 200 while this web process answers at all; it checks no dependency (see
    ``/readyz``), so a dependency's outage never makes a supervisor restart the web server."""

    permission_classes = [AllowAny]
    authentication_classes: list[type] = []
    renderer_classes = [JSONRenderer, PlainTextRenderer]
    content_negotiation_class = AcceptHeaderOnly

    @extend_schema(
        tags=["service"],
        parameters=[NO_FORMAT_PARAMETER],
        responses={
            (200, "application/json"): LivenessSerializer,
            (200, "text/plain"): OpenApiResponse(OpenApiTypes.STR, "`status: ok`"),
        },
    )
    def get(self, request: Request) -> Response:
        return Response({"status": "ok"})


class ReadinessView(APIView):
    """200 when every dependency answers (the database, Redis, Kafka, every gRPC server, at
    least one Celery worker), else 503; staff also see which one, why, and how fast."""

    permission_classes = [AllowAny]
    renderer_classes = [JSONRenderer, PlainTextRenderer]
    content_negotiation_class = AcceptHeaderOnly

    @extend_schema(
        tags=["service"],
        parameters=[NO_FORMAT_PARAMETER],
        responses={
            (200, "application/json"): HealthSerializer,
            (200, "text/plain"): OpenApiResponse(OpenApiTypes.STR, "`status: ok`"),
            (503, "application/json"): HealthSerializer,
            (503, "text/plain"): OpenApiResponse(OpenApiTypes.STR, "`status: unavailable`"),
        },
    )
    def get(self, request: Request) -> Response:
        checks = readiness()
        ready = all(check["status"] == "ok" for check in checks.values())
        body: dict[str, Any] = {"status": "ok" if ready else "unavailable"}
        # Which dependency failed, and its error (hosts, ports), is for staff only.
        if request.user.is_authenticated and request.user.is_staff:
            body["checks"] = checks
        return Response(
            body, status=status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE
        )
