"""ASGI entry point: ``daphne example_project.asgi:application``.

HTTP goes to Django (WhiteNoise serves the static files); WebSockets go through
realtime's origin check and authentication to the consumers.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
django_asgi_app = get_asgi_application()  # before importing models

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.urls import path  # noqa: E402

import realtime.asgi  # noqa: E402
from example_project.chat.consumers import ChatConsumer, DashboardConsumer  # noqa: E402
from example_project.notes.consumers import NotesConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": realtime.asgi.websocket_app(
            [
                path("ws/", ChatConsumer.as_asgi()),
                path("ws/dashboard/", DashboardConsumer.as_asgi()),
                path("ws/notes/", NotesConsumer.as_asgi()),
            ]
        ),
    }
)
