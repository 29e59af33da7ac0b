"""The app under test in collab.py: one consumer with shared documents."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.collab_app.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.urls import path  # noqa: E402

from realtime.asgi import websocket_app  # noqa: E402
from realtime.collab.consumers import DocumentsMixin  # noqa: E402
from realtime.consumers import RealtimeConsumer  # noqa: E402


class EditorConsumer(DocumentsMixin, RealtimeConsumer):
    """Anyone may read and edit any ``doc.*`` (the benchmark measures the path, not
    the permission checks)."""

    subscriptions = {"doc.{slug}": []}
    documents = {"doc.{slug}": []}


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": websocket_app([path("ws/", EditorConsumer.as_asgi())]),
    }
)
