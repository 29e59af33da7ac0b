from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from example_project.chat import views

urlpatterns = [
    path("", views.home, name="home"),
    path("chat/", views.chat, name="chat"),
    path("api/messages/", views.post_message, name="post-message"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("realtime/", include("realtime.urls")),
    path("admin/", admin.site.urls),
]
