"""Routes of the relay API and the seed's compatibility endpoint."""

from django.urls import path

from . import views

urlpatterns = [
    path("api/relay/", views.RelayView.as_view(), name="relay"),
    path("api/transactions/", views.TransactionListView.as_view(), name="transaction-list"),
    path(
        "api/transactions/<uuid:transaction_id>/",
        views.TransactionDetailView.as_view(),
        name="transaction-detail",
    ),
    path("communication/restKafkaGRPC/", views.SeedRelayView.as_view(), name="seed-relay"),
    path("healthz", views.HealthView.as_view(), name="healthz"),
]
