from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules

# Importing the module registers the system checks (it imports no model).
from realtime import checks  # noqa: F401


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Realtime"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Every installed app's events.py declares its events at start-up.
        autodiscover_modules("events")
