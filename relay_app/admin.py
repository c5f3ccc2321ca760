"""Admin: transactions and their hops, read-only, with a waterfall of the hops' timing."""

from typing import Any

from django.contrib import admin
from django.db.models import DurationField, ExpressionWrapper, F
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.text import Truncator

from .hops import Stage
from .models import Hop, Transaction
from .waterfall import format_duration, waterfall

admin.site.site_header = "relay administration"
admin.site.site_title = "relay admin"
admin.site.index_title = "Transactions and their hops"

# How much of a message or final text the transaction list shows.
EXCERPT_CHARACTERS = 60


class ReadOnlyAdminMixin:
    """Transactions and hops are a record of what happened: nobody adds, edits or deletes them."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class HopInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Hop
    extra = 0
    can_delete = False
    fields = (
        "position",
        "stage_label",
        "text",
        "started",
        "hop_duration",
        "kafka_topic",
        "kafka_partition",
        "kafka_offset",
    )
    readonly_fields = fields
    ordering = ("stage",)

    @admin.display(description="#")
    def position(self, hop: Hop) -> int:
        return hop.stage

    @admin.display(description="stage")
    def stage_label(self, hop: Hop) -> str:
        return Stage(hop.stage).spec.description

    @admin.display(description="started at")
    def started(self, hop: Hop) -> str:
        """To the millisecond: hops are milliseconds apart."""
        return timezone.localtime(hop.started_at).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]

    @admin.display(description="duration")
    def hop_duration(self, hop: Hop) -> str:
        return format_duration(hop.duration)


@admin.register(Transaction)
class TransactionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "status",
        "message_excerpt",
        "final_excerpt",
        "total_duration",
        "created_at",
    )
    list_filter = ("status", "created_at")
    search_fields = ("id", "message")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    list_per_page = 50
    fields = (
        "id",
        "status",
        "message",
        "final_message",
        "error",
        "failed_stage",
        "idempotency_key",
        "created_at",
        "deadline_at",
        "finished_at",
        "total_duration",
    )
    readonly_fields = fields
    inlines = (HopInline,)

    @admin.display(description="message")
    def message_excerpt(self, transaction: Transaction) -> str:
        return Truncator(transaction.message).chars(EXCERPT_CHARACTERS)

    @admin.display(description="final text")
    def final_excerpt(self, transaction: Transaction) -> str:
        return Truncator(transaction.final_message).chars(EXCERPT_CHARACTERS) or "—"

    @admin.display(
        description="duration",
        ordering=ExpressionWrapper(
            F("finished_at") - F("created_at"), output_field=DurationField()
        ),
    )
    def total_duration(self, transaction: Transaction) -> str:
        return format_duration(transaction.duration)

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Transaction | None = None,
    ) -> HttpResponse:
        """The page of one transaction, with its hops' waterfall (``change_form.html``)."""
        if obj is not None:
            context["waterfall"] = waterfall(
                started_at=obj.created_at, finished_at=obj.finished_at, hops=obj.hops.all()
            )
        return super().render_change_form(request, context, add, change, form_url, obj)
