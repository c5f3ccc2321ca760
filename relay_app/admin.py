"""Admin: transactions and their hops, read-only."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import Hop, Transaction


class HopInline(admin.TabularInline):
    model = Hop
    extra = 0
    can_delete = False
    fields = (
        "stage",
        "text",
        "started_at",
        "finished_at",
        "kafka_topic",
        "kafka_partition",
        "kafka_offset",
    )
    readonly_fields = fields
    ordering = ("stage",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Transaction)
class TransactionAdmin(admin.ModelAdmin):
    list_display = ("id", "status", "message", "created_at", "finished_at")
    list_filter = ("status", "created_at")
    search_fields = ("id", "message")
    date_hierarchy = "created_at"
    readonly_fields = (
        "id",
        "message",
        "final_message",
        "status",
        "error",
        "failed_stage",
        "created_at",
        "finished_at",
    )
    inlines = (HopInline,)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
