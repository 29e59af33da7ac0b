import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.urls import path  # noqa: E402

from realtime.asgi import websocket_app  # noqa: E402
from tests.testapp import consumers  # noqa: E402

websocket_routes = [
    path("ws/", consumers.EchoConsumer.as_asgi()),
    path("ws/auth/", consumers.AuthConsumer.as_asgi()),
    path("ws/feeds/", consumers.FeedConsumer.as_asgi()),
    path("ws/staff/", consumers.StaffConsumer.as_asgi()),
    path("ws/versioned/", consumers.VersionedConsumer.as_asgi()),
    path("ws/broken/", consumers.BrokenConsumer.as_asgi()),
]
application = ProtocolTypeRouter(
    {"http": django_asgi_app, "websocket": websocket_app(websocket_routes)}
)
