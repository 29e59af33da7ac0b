from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules

# Importing checks registers the system checks (neither module imports a model).
from realtime import checks, transport  # noqa: F401


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Realtime"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Every installed app's events.py declares its events at start-up.
        autodiscover_modules("events")
        # daphne loads the app after its server: from the first connection on.
        transport.defer_server_formatting()
