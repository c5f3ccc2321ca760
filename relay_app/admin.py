"""Admin: transactions and their hops, read-only, with a waterfall of the hops' timing and
their attempts that did not succeed, an action to cancel those still pending, reruns (one
from a hop staff choose, or the selected ones from the hops they failed at; a reason is
required) and two of one lineage compared hop by hop, and bulk jobs (cancel or rerun the
filtered list's, a dry run first) with their progress; API tokens, to see and revoke
(``manage.py create_api_token`` makes them); the audit trail, read-only."""

import json
from typing import Any, cast
from uuid import UUID

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import DurationField, ExpressionWrapper, F, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import Truncator

from .comparison import NotOneLineage, compare
from .hops import Stage
from .models import ApiToken, Attempt, AuditEntry, BulkJob, BulkJobItem, Hop, Transaction
from .selectors import (
    bulk_job_progress,
    bulk_jobs_with_progress,
    transaction_filter,
    transaction_get,
)
from .services.audit import REASON_MAX_LENGTH, admin_bulk_deletion, audit_admin_deletion
from .services.bulk import BulkJobNotStarted, bulk_dry_run, bulk_job_cancel, bulk_job_start
from .services.cancel import transaction_cancel_for
from .services.dead_letters import dead_letter_of
from .services.rerun import (
    RerunRefused,
    rerun_check,
    rerun_default_hop,
    rerun_hops_allowed,
    transaction_rerun,
)
from .services.tokens import api_tokens_revoke
from .tasks import HOP_TASKS, chain_task_id
from .tracing import trace_url
from .waterfall import format_duration, waterfall

admin.site.site_header = "relay administration"
admin.site.site_title = "relay admin"
admin.site.index_title = "Transactions and their hops"
admin.site.site_url = "/"  # "View site": the landing page (relay_app/home.py)
# The few models are one click away on the index and in the breadcrumbs; the sidebar that
# lists them again would take a quarter of a 1280-pixel screen from the transaction list.
admin.site.enable_nav_sidebar = False

# How much of a message the transaction list shows.
EXCERPT_CHARACTERS = 40


class ReadOnlyAdminMixin:
    """Transactions and hops are a record of what happened: nobody adds, edits or deletes them.

    Every member of staff may read them all, as in the API, with no per-model permission.
    """

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_staff)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.is_staff)

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
        "inherited",
        "task",
    )
    readonly_fields = fields
    ordering = ("stage",)

    @admin.display(description="Celery task")
    def task(self, hop: Hop) -> str:
        """The task that performed the hop, a link to its page in Flower (RELAY_FLOWER_URL);
        hops 1 and 8 are the web server's own."""
        name = HOP_TASKS.get(Stage(hop.stage))
        if (
            name is None
            or hop.stage == Stage.REST_RESPONSE
            or hop.inherited  # done by the original's task
            or not settings.RELAY_FLOWER_URL
        ):
            return "-"
        task_id = chain_task_id(str(hop.transaction_id), name)
        return format_html(
            '<a href="{}/task/{}" target="_blank">{}</a>',
            settings.RELAY_FLOWER_URL.rstrip("/"),
            task_id,
            name,
        )

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


class AttemptInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The attempts of hops that did not succeed (a hop's successful one is the hop)."""

    model = Attempt
    extra = 0
    can_delete = False
    verbose_name_plural = "attempts that did not succeed"
    fields = (
        "stage_label",
        "number",
        "started",
        "attempt_duration",
        "outcome",
        "kind",
        "error",
        "retried",
    )
    readonly_fields = fields
    ordering = ("stage", "number")

    @admin.display(description="stage")
    def stage_label(self, attempt: Attempt) -> str:
        return f"{attempt.stage}. {Stage(attempt.stage).spec.description}"

    @admin.display(description="started at")
    def started(self, attempt: Attempt) -> str:
        return timezone.localtime(attempt.started_at).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]

    @admin.display(description="duration")
    def attempt_duration(self, attempt: Attempt) -> str:
        return format_duration(attempt.duration)


@admin.register(Transaction)
class TransactionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    # Narrow enough for a 1280-pixel screen beside the filters: a short id, one excerpt.
    list_display = (
        "short_id",
        "status",
        "owner",
        "message_excerpt",
        "total_duration",
        "created_at",
    )
    list_filter = (
        "status",
        "failed_stage",
        "created_at",
        ("owner", admin.EmptyFieldListFilter),
    )
    search_fields = ("id", "message", "owner__username", "trace_id")
    list_select_related = ("owner",)
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    list_per_page = 50
    fields = (
        "id",
        "owner",
        "status",
        "message",
        "final_message",
        "error",
        "failed_stage",
        "idempotency_key",
        "trace",
        "created_at",
        "deadline_at",
        "finished_at",
        "total_duration",
        "cancelled_by",
        "cancelled_at",
        "dead_letter",
        "rerun_of_link",
        "from_hop",
        "reruns_links",
    )
    readonly_fields = fields
    inlines = (HopInline, AttemptInline)
    # Many at once are rerun by a paced background job (bulk_rerun), never inside the request.
    actions = ["cancel", "bulk_cancel", "bulk_rerun"]

    @admin.action(description="Cancel (bulk): a dry run, then a background job")
    def bulk_cancel(
        self, request: HttpRequest, queryset: QuerySet[Transaction]
    ) -> HttpResponse | None:
        return self._bulk(request, queryset, BulkJob.Action.CANCEL, title="Cancel (bulk)")

    @admin.action(description="Rerun (bulk): a dry run, then a background job")
    def bulk_rerun(
        self, request: HttpRequest, queryset: QuerySet[Transaction]
    ) -> HttpResponse | None:
        return self._bulk(request, queryset, BulkJob.Action.RERUN, title="Rerun (bulk)")

    def _bulk(
        self, request: HttpRequest, queryset: QuerySet[Transaction], action: str, *, title: str
    ) -> HttpResponse | None:
        """The dry run of ``action`` on the selection (all the filtered list's, with "select
        all"), asking for a reason; once given, the job, and its page."""
        transactions = transaction_filter(viewer=request.user).filter(pk__in=queryset.values("pk"))
        form = BulkReasonForm(request.POST if request.POST.get("confirm") else None)
        if form.is_valid():
            select_across = request.POST.get("select_across") == "1"
            try:
                job = bulk_job_start(
                    viewer=request.user,  # type: ignore[arg-type]
                    action=action,
                    transactions=transactions,
                    filters={
                        "admin_list": request.GET.urlencode(),
                        "selected": "all matching" if select_across else "chosen",
                    },
                    reason=form.cleaned_data["reason"],
                    source=AuditEntry.Source.ADMIN,
                )
            except BulkJobNotStarted:
                self.message_user(
                    request, "Redis is unavailable: the job was not started.", messages.ERROR
                )
                return None
            self.message_user(
                request, f"Started a bulk job for {job.total} transaction(s).", messages.SUCCESS
            )
            return HttpResponseRedirect(reverse("admin:relay_app_bulkjob_change", args=[job.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.model._meta,
            "dry_run": bulk_dry_run(action=action, transactions=transactions),
            "verb": "cancelled" if action == BulkJob.Action.CANCEL else "rerun",
            "form": form,
            "action_name": f"bulk_{action}",
            "select_across": request.POST.get("select_across", "0"),
            "selected": request.POST.getlist(ACTION_CHECKBOX_NAME),
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(
            request, "admin/relay_app/transaction/bulk_confirmation.html", context
        )

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path(
                "<uuid:transaction_id>/rerun/",
                view(self.rerun_view),
                name="relay_app_transaction_rerun",
            ),
            path(
                "compare/<uuid:left_id>/<uuid:right_id>/",
                view(self.compare_view),
                name="relay_app_transaction_compare",
            ),
            *super().get_urls(),
        ]

    def rerun_view(self, request: HttpRequest, transaction_id: str) -> HttpResponse:
        """Rerun one transaction: which hop (those it can be rerun from; the one that failed
        first), and why (required); the confirmation says what would be done."""
        original = _get_or_404(transaction_id)
        form = RerunForm(request.POST or None, original=original)
        if request.method == "POST" and form.is_valid():
            try:
                rerun = transaction_rerun(
                    original,
                    user=request.user,
                    from_hop=int(form.cleaned_data["from_hop"]),
                    reason=form.cleaned_data["reason"],
                    source=AuditEntry.Source.ADMIN,
                )
            except RerunRefused as refused:
                form.add_error(None, str(refused))
            else:
                self.message_user(
                    request,
                    f"Rerun {rerun.id} of {original.id} started from hop {rerun.from_hop}.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(
                    reverse("admin:relay_app_transaction_change", args=[rerun.id])
                )
        plan = [_plan(request, original)]
        return self._rerun_page(request, form=form, plan=plan, single=original)

    def _rerun_page(
        self,
        request: HttpRequest,
        *,
        form: forms.Form,
        plan: list[dict[str, Any]],
        single: Transaction,
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Rerun a transaction",
            "form": form,
            "plan": plan,
            "single": single,
            "would_run": sum(1 for row in plan if row["hop"] is not None),
        }
        return TemplateResponse(
            request, "admin/relay_app/transaction/rerun_confirmation.html", context
        )

    def compare_view(self, request: HttpRequest, left_id: str, right_id: str) -> HttpResponse:
        """Two transactions of one lineage side by side, hop by hop."""
        left, right = _get_or_404(left_id), _get_or_404(right_id)
        try:
            comparison = compare(left, right)
        except NotOneLineage as refused:
            self.message_user(request, str(refused), messages.ERROR)
            return HttpResponseRedirect(
                reverse("admin:relay_app_transaction_change", args=[left.id])
            )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Compare two transactions of one lineage",
            "comparison": comparison,
        }
        return TemplateResponse(request, "admin/relay_app/transaction/compare.html", context)

    @admin.display(description="rerun of")
    def rerun_of_link(self, transaction: Transaction) -> str:
        """The transaction this one reruns, and the two compared."""
        if transaction.rerun_of_id is None:
            return "-"
        return format_html(
            '<a href="{}">{}</a> · <a href="{}">compare with it</a>',
            reverse("admin:relay_app_transaction_change", args=[transaction.rerun_of_id]),
            transaction.rerun_of_id,
            reverse(
                "admin:relay_app_transaction_compare",
                args=[transaction.rerun_of_id, transaction.id],
            ),
        )

    @admin.display(description="reruns")
    def reruns_links(self, transaction: Transaction) -> str:
        """Its reruns, each with its comparison to this one."""
        reruns = list(transaction.reruns.order_by("created_at").values_list("id", "status"))
        if not reruns:
            return "-"
        return format_html_join(
            format_html("<br>"),
            '<a href="{}">{}</a> ({}) · <a href="{}">compare</a>',
            (
                (
                    reverse("admin:relay_app_transaction_change", args=[rerun_id]),
                    rerun_id,
                    rerun_status,
                    reverse("admin:relay_app_transaction_compare", args=[transaction.id, rerun_id]),
                )
                for rerun_id, rerun_status in reruns
            ),
        )

    @admin.action(description="Cancel the selected transactions (those still pending)")
    def cancel(self, request: HttpRequest, queryset: QuerySet[Transaction]) -> None:
        cancelled = finished = 0
        for transaction_id in queryset.values_list("id", flat=True):
            _, done = transaction_cancel_for(
                transaction_id=str(transaction_id),
                viewer=request.user,
                source=AuditEntry.Source.ADMIN,
            )
            cancelled, finished = cancelled + done, finished + (not done)
        self.message_user(request, f"Cancelled {cancelled} transaction(s).", messages.SUCCESS)
        if finished:
            self.message_user(
                request,
                f"{finished} had already ended and were left as they were.",
                messages.WARNING,
            )

    @admin.display(description="id")
    def short_id(self, transaction: Transaction) -> str:
        """The id's first eight digits (the search takes them too); all of it on hover."""
        return format_html('<span title="{}">{}</span>', transaction.id, str(transaction.id)[:8])

    @admin.display(description="trace")
    def trace(self, transaction: Transaction) -> str:
        """Its trace id, a link to the trace in the viewer (RELAY_TRACE_URL) where there is one."""
        if not transaction.trace_id:
            return "-"
        if url := trace_url(transaction.trace_id):
            return format_html('<a href="{}" target="_blank">{}</a>', url, transaction.trace_id)
        return transaction.trace_id

    @admin.display(description="dead letter")
    def dead_letter(self, transaction: Transaction) -> str:
        """Where its last consumed record went when it failed (``topic[partition]@offset``),
        and the hop a rerun starts from to redrive it."""
        written = dead_letter_of(transaction)
        if written is None:
            return "-"
        return f"{written} (redrive: rerun from hop {int(written.redrive_from_hop)})"

    @admin.display(description="message")
    def message_excerpt(self, transaction: Transaction) -> str:
        return Truncator(transaction.message).chars(EXCERPT_CHARACTERS)

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
        """The page of one transaction, with its hops' waterfall and where its dead letter
        went (``change_form.html``)."""
        if obj is not None:
            context["rerun_url"] = reverse("admin:relay_app_transaction_rerun", args=[obj.id])
            context["waterfall"] = waterfall(
                started_at=obj.created_at,
                finished_at=obj.finished_at,
                hops=obj.hops.all(),
                attempts=obj.attempts.all(),
            )
            context["dead_letter"] = dead_letter_of(obj)
        return super().render_change_form(request, context, add, change, form_url, obj)


def _get_or_404(transaction_id: str) -> Transaction:
    try:
        return transaction_get(transaction_id=str(transaction_id), viewer=None)
    except Transaction.DoesNotExist as exc:
        raise Http404(f"no transaction {transaction_id}") from exc


def _plan(request: HttpRequest, original: Transaction) -> dict[str, Any]:
    """What a rerun of ``original`` from the hop it stopped at would do, or why not."""
    try:
        hop: Stage | None = rerun_check(original, user=request.user)
        why = ""
    except RerunRefused as refused:
        hop, why = None, str(refused)
    return {"transaction": original, "hop": hop, "why": why}


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        help_text="Why it is rerun: kept in the record.",
    )


class RerunForm(ReasonForm):
    """Which hop to rerun one transaction from (those whose input is recorded), and why."""

    field_order = ["from_hop", "reason"]
    from_hop = forms.TypedChoiceField(
        coerce=int, label="From hop", help_text="The hops before it are inherited, unchanged."
    )

    def __init__(self, *args: Any, original: Transaction, **kwargs: Any) -> None:
        default = rerun_default_hop(original)
        super().__init__(*args, **{"initial": {"from_hop": default}, **kwargs})
        cast(forms.TypedChoiceField, self.fields["from_hop"]).choices = [
            (
                stage.value,
                f"{stage.value}. {stage.spec.description}"
                + (" (where it stopped)" if stage == default else ""),
            )
            for stage in rerun_hops_allowed(original)
        ]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens by user, when made and last used; superusers may revoke them. Made only by
    ``manage.py create_api_token``, which shows the token once: nothing here can show it."""

    list_display = ("prefix", "user", "name", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "created_at")
    search_fields = ("prefix", "user__username", "name")
    list_select_related = ("user",)
    fields = ("prefix", "user", "name", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    actions = ["revoke"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a token is never edited, only revoked (the action below)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoked, not deleted: the record of who had access stays

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        revoked = api_tokens_revoke(
            tokens=queryset, actor=request.user, source=AuditEntry.Source.ADMIN
        )
        self.message_user(request, f"Revoked {revoked} token(s).", messages.SUCCESS)


@admin.action(
    permissions=["delete"],
    description=delete_selected.short_description,  # type: ignore[attr-defined]
)
def delete_selected_audited(
    modeladmin: "admin.ModelAdmin[Any]", request: HttpRequest, queryset: QuerySet[Any]
) -> HttpResponse | None:
    """Django's "Delete selected", recorded in the audit trail as one entry. Django logs the
    deletion of several objects with no signal (one ``bulk_create`` of its ``LogEntry``), so
    the entry the other admin changes get from that log is made here instead."""
    objects = [(str(obj.pk), str(obj)[:200]) for obj in queryset]
    with admin_bulk_deletion():
        response = delete_selected(modeladmin, request, queryset)
    # None after a confirmed deletion; a page when it asks to confirm or refuses.
    if response is None and request.POST.get("post") and objects:
        audit_admin_deletion(actor=request.user, model=modeladmin.model, objects=objects)
    return response


# Every model's "Delete selected" is this one (the site-wide action of that name).
admin.site.add_action(delete_selected_audited, "delete_selected")


class BulkReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=REASON_MAX_LENGTH,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Why: the audit trail keeps it with your name.",
    )


#: How many of a bulk job's items its admin page shows; the API's pages have them all.
ITEMS_SHOWN = 100


class FirstItemsFormSet(BaseInlineFormSet):
    """The inline's first ``ITEMS_SHOWN`` objects, in its ordering: sliced here, once the
    formset has narrowed the queryset to the job (an inline's own queryset cannot be sliced,
    the formset filters it after)."""

    def get_queryset(self) -> QuerySet[Any]:
        if not hasattr(self, "_queryset"):
            self._queryset = super().get_queryset()[:ITEMS_SHOWN]
        return self._queryset


class BulkJobItemInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The job's items in order, each with its outcome: the first ``ITEMS_SHOWN``, so that
    a job of thousands has a page of the same size (the job's "items" field links to all)."""

    model = BulkJobItem
    formset = FirstItemsFormSet
    verbose_name_plural = f"items (at most the first {ITEMS_SHOWN})"
    extra = 0
    can_delete = False
    fields = ("position", "transaction_link", "outcome", "detail", "result_link", "finished_at")
    readonly_fields = fields
    ordering = ("position",)
    max_num = 0

    @admin.display(description="transaction")
    def transaction_link(self, item: BulkJobItem) -> str:
        return _short_transaction_link(item.transaction_id)

    @admin.display(description="rerun as")
    def result_link(self, item: BulkJobItem) -> str:
        return _short_transaction_link(item.result_transaction_id)


def _short_transaction_link(transaction_id: UUID | None) -> str:
    """A link to the transaction's page, by the first characters of its id; "-" for none."""
    if transaction_id is None:
        return "-"
    url = reverse("admin:relay_app_transaction_change", args=[transaction_id])
    return format_html('<a href="{}">{}</a>', url, str(transaction_id)[:8])


@admin.register(BulkJob)
class BulkJobAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Bulk jobs, newest first: their progress and each item's outcome; a running one can be
    cancelled (the action), which stops it before its next item."""

    list_display = ("created_at", "action", "status", "created_by", "total", "progress_shown")
    list_filter = ("action", "status", "created_at")
    list_select_related = ("created_by",)
    fields = (
        "id",
        "action",
        "status",
        "progress_shown",
        "created_by",
        "source",
        "reason",
        "filter",
        "total",
        "all_items",
        "skipped_at_start",
        "created_at",
        "started_at",
        "finished_at",
        "cancelled_by",
    )
    readonly_fields = fields
    inlines = (BulkJobItemInline,)
    actions = ["cancel_jobs"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[BulkJob]:
        """Each job with its items counted by outcome: the list's progress column is read
        with the page, one query, not one per row."""
        return bulk_jobs_with_progress(super().get_queryset(request))

    @admin.display(description="items")
    def all_items(self, job: BulkJob) -> str:
        """Where to read every item, a page at a time: the API's page of the job, which staff
        signed in here browse as HTML. The page below shows the first ``ITEMS_SHOWN``."""
        url = reverse("bulk-job-detail", args=[job.pk])
        if job.total <= ITEMS_SHOWN:
            return format_html('all {} below; also <a href="{}">in the API</a>', job.total, url)
        return format_html(
            'the first {} of {} below; <a href="{}">all {}, a page at a time, in the API</a>',
            ITEMS_SHOWN,
            job.total,
            url,
            job.total,
        )

    @admin.display(description="progress")
    def progress_shown(self, job: BulkJob) -> str:
        progress = bulk_job_progress(job=job)
        finished = job.total - progress["pending"] - progress["running"]
        counts = ", ".join(f"{n} {outcome}" for outcome, n in progress.items() if n)
        return f"{finished} of {job.total} ({counts or 'no items'})"

    @admin.action(description="Cancel the selected jobs (stopped before their next item)")
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[BulkJob]) -> None:
        stopped = 0
        for job_id in queryset.values_list("id", flat=True):
            _, done = bulk_job_cancel(
                job_id=str(job_id), viewer=request.user, source=AuditEntry.Source.ADMIN
            )
            stopped += done
        self.message_user(request, f"Cancelled {stopped} job(s).", messages.SUCCESS)


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every operator action, newest first: staff read it; nobody adds, edits or deletes an
    entry here, not even a superuser (no delete action, no delete page)."""

    list_display = ("at", "actor_name", "action", "source", "transaction_count", "reason_excerpt")
    list_filter = ("action", "source", "actor_name", "at")
    # A transaction's id (or its first digits) finds every entry that names it.
    search_fields = ("transaction_ids", "actor_name", "reason")
    date_hierarchy = "at"
    list_per_page = 50
    fields = (
        "at",
        "actor",
        "actor_name",
        "action",
        "source",
        "reason",
        "transaction_count",
        "transactions",
        "details_shown",
    )
    readonly_fields = fields

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        return {}  # not even "Delete selected" (refused anyway: no delete permission)

    @admin.display(description="reason")
    def reason_excerpt(self, entry: AuditEntry) -> str:
        return Truncator(entry.reason).chars(EXCERPT_CHARACTERS)

    @admin.display(description="transactions")
    def transactions(self, entry: AuditEntry) -> str:
        """The ids kept, each a link to its transaction (while retention keeps it)."""
        if not entry.transaction_ids:
            return "-"
        links = format_html_join(
            mark_safe("<br>"),
            '<a href="{}">{}</a>',
            (
                (reverse("admin:relay_app_transaction_change", args=[pk]), pk)
                for pk in entry.transaction_ids
            ),
        )
        more = entry.transaction_count - len(entry.transaction_ids)
        return format_html("{}{}", links, f" and {more} more" if more > 0 else "")

    @admin.display(description="details")
    def details_shown(self, entry: AuditEntry) -> str:
        return format_html("<pre>{}</pre>", json.dumps(entry.details, indent=2, sort_keys=True))
