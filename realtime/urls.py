"""``path("realtime/", include("realtime.urls"))`` adds the ticket endpoint, a readiness
check and the Prometheus metrics (off unless REALTIME["METRICS_ENABLED"])."""

from django.urls import path

from realtime.metrics import metrics_view
from realtime.views import TicketView, health

app_name = "realtime"
urlpatterns = [
    path("ticket/", TicketView.as_view(), name="ticket"),
    path("metrics/", metrics_view, name="metrics"),
    path("health/", health, name="health"),
]
