from django.apps import AppConfig


class InboxConfig(AppConfig):
    name = "realtime.inbox"
    label = "realtime_inbox"
    verbose_name = "Realtime inbox"
    default_auto_field = "django.db.models.BigAutoField"
