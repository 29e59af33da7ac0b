from django.urls import path

from realtime.inbox import views

app_name = "realtime_inbox"

urlpatterns = [
    path("", views.NotificationList.as_view(), name="list"),
    path("unread-count/", views.UnreadCount.as_view(), name="unread-count"),
    path("read-all/", views.MarkAllRead.as_view(), name="read-all"),
    path("<int:pk>/", views.NotificationDetail.as_view(), name="detail"),
    path("<int:pk>/read/", views.MarkRead.as_view(), name="read"),
]
