from django.urls import include, path

urlpatterns = [
    path("realtime/", include("realtime.urls")),
    path("inbox/", include("realtime.inbox.urls")),
]
