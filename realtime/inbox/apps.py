from django.apps import AppConfig

from realtime import publishing
from realtime.inbox.store import store


class InboxConfig(AppConfig):
    name = "realtime.inbox"
    label = "realtime_inbox"
    verbose_name = "Realtime inbox"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # notify_user(persist=True) stores here: publishing never imports this
        # optional app, the app hands it its store once installed.
        publishing.set_persister(store)
