import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.realtime_app.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.urls import path  # noqa: E402

from benchmarks.realtime_app.consumers import BenchConsumer  # noqa: E402
from realtime.asgi import websocket_app  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": websocket_app([path("ws/", BenchConsumer.as_asgi())]),
    }
)
