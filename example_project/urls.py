from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from example_project.chat import views
from example_project.notes import views as notes_views

urlpatterns = [
    path("", views.home, name="home"),
    path("chat/", views.chat, name="chat"),
    path("chat/<slug:slug>/", views.chat, name="chat-room"),
    path(
        "chat/api/rooms/<slug:slug>/messages/",
        views.messages_api,
        name="chat-messages",
    ),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("notes/", notes_views.notes, name="notes"),
    path("notes/<slug:slug>/", notes_views.notes, name="note"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("inbox/", include("realtime.inbox.urls")),
    path("realtime/", include("realtime.urls")),
    path("admin/", admin.site.urls),
]
