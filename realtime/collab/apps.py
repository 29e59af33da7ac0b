from django.apps import AppConfig


class CollabConfig(AppConfig):
    name = "realtime.collab"
    label = "realtime_collab"
    verbose_name = "Realtime shared documents"
    default_auto_field = "django.db.models.BigAutoField"
