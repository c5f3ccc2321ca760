"""Routes of the relay API, its schema and docs, and the original example's compatibility
endpoint."""

from django.urls import include, path
from drf_spectacular.views import SpectacularSwaggerView

from . import views

urlpatterns = [
    path("api/", views.ApiRootView.as_view(), name="api-root"),
    path("api/relay/", views.RelayView.as_view(), name="relay"),
    path("api/transactions/", views.TransactionListView.as_view(), name="transaction-list"),
    path("api/transactions/bulk/", views.TransactionBulkView.as_view(), name="transaction-bulk"),
    path("api/bulk-jobs/<uuid:job_id>/", views.BulkJobDetailView.as_view(), name="bulk-job-detail"),
    path(
        "api/bulk-jobs/<uuid:job_id>/cancel/",
        views.BulkJobCancelView.as_view(),
        name="bulk-job-cancel",
    ),
    path(
        "api/transactions/<uuid:transaction_id>/",
        views.TransactionDetailView.as_view(),
        name="transaction-detail",
    ),
    path(
        "api/transactions/<uuid:transaction_id>/cancel/",
        views.TransactionCancelView.as_view(),
        name="transaction-cancel",
    ),
    path(
        "api/transactions/<uuid:transaction_id>/rerun/",
        views.TransactionRerunView.as_view(),
        name="transaction-rerun",
    ),
    path(
        "api/transactions/<uuid:transaction_id>/compare/<uuid:other_id>/",
        views.TransactionCompareView.as_view(),
        name="transaction-compare",
    ),
    path(
        "api/transactions/<uuid:transaction_id>/events/",
        views.TransactionEventsView.as_view(),
        name="transaction-events",
    ),
    path("api/schema/", views.SchemaView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("communication/restKafkaGRPC/", views.OriginalRelayView.as_view(), name="original-relay"),
    path("healthz", views.HealthView.as_view(), name="healthz"),
    path("readyz", views.ReadinessView.as_view(), name="readyz"),
    path("metrics", views.MetricsView.as_view(), name="metrics"),
    path("api/auth/staff/", views.StaffCheckView.as_view(), name="staff-check"),
    # Log in and out of the browsable API with a session (the admin's login works too).
    path("api-auth/", include("rest_framework.urls")),
]
