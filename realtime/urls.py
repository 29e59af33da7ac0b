"""``path("realtime/", include("realtime.urls"))`` adds the ticket endpoint."""

from django.urls import path

from realtime.views import TicketView

app_name = "realtime"
urlpatterns = [path("ticket/", TicketView.as_view(), name="ticket")]
