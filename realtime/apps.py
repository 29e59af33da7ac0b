from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Realtime"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Importing the module registers the system checks. Only here, once the
        # apps are ready: the checks inspect the consumers, which import Django's
        # auth models.
        from realtime import checks  # noqa: F401

        # Every installed app's events.py declares its events at start-up.
        autodiscover_modules("events")
