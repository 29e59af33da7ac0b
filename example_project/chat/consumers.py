"""The WebSocket endpoints: the chat (also used by the notifications page) and the
dashboard. Both are RealtimeConsumers, so every signed-in connection also receives
its user's personal events (``notify_user``): the bell works on every page."""

from channels.db import database_sync_to_async

import realtime
from example_project.chat import dashboard
from example_project.chat.metrics import counters
from example_project.chat.models import Message, ReadMarker, Room
from realtime.consumers import RealtimeConsumer
from realtime.exceptions import PermissionDenied
from realtime.permissions import BasePermission, IsAuthenticated


class RoomExists(BasePermission):
    """Subscribe-time check: ``room.{room}`` must name a room in the database."""

    message = "No such room."

    def has_subscribe_permission(self, consumer, group, **params):
        # A plain method runs in a thread, so it may use the ORM.
        return Room.objects.filter(slug=params["room"]).exists()


class CountedConsumer(RealtimeConsumer):
    """Keeps this process's connection count for the dashboard."""

    permission_classes = [IsAuthenticated]
    _counted = False

    async def on_connect(self):
        self._counted = True
        counters.connections += 1

    async def on_disconnect(self, code):
        if self._counted:
            self._counted = False
            counters.connections -= 1


class ChatConsumer(CountedConsumer):
    subscriptions = {"room.{room}": [IsAuthenticated, RoomExists]}
    # Typing indicators: relayed to the room's other members by the server (only by
    # people subscribed to it), never stored, never echoed, rate-limited.
    ephemeral_events = {"chat.typing": [IsAuthenticated]}

    def require_subscribed(self, room: str) -> str:
        """Only people looking at a room may write to it."""
        group = f"room.{room}"
        if not self.is_subscribed(group):
            raise PermissionDenied(f"subscribe to {group!r} first")
        return group

    @realtime.handler("chat.message")
    async def chat_message(self, message):
        group = self.require_subscribed(message.data["room"])
        stored = await _store_message(self.user, message.data)
        counters.messages += 1
        # Stored first, then broadcast: a page that reloads finds it in the database.
        seq = await self.notify(group, "chat.message", stored.as_event())
        return {"id": stored.pk, "seq": seq}

    @realtime.handler("chat.read")
    async def chat_read(self, message):
        room, message_id = message.data["room"], message.data["message_id"]
        group = self.require_subscribed(room)
        if await _mark_read(self.user, room, message_id):
            data = {"room": room, "message_id": message_id}
            data["user"] = self.user.get_username()
            await self.notify(group, "chat.read", data)
        return {"message_id": message_id}


class DashboardConsumer(CountedConsumer):
    subscriptions = {dashboard.GROUP: [IsAuthenticated]}

    async def on_connect(self):
        await super().on_connect()
        dashboard.viewer_joined()

    async def on_disconnect(self, code):
        if self._counted:
            dashboard.viewer_left()
        await super().on_disconnect(code)


@database_sync_to_async
def _store_message(user, data) -> Message:
    room = Room.objects.get(slug=data["room"])
    # post_save (signals.py) turns @mentions into notifications.
    return Message.objects.create(room=room, author=user, text=data["text"])


@database_sync_to_async
def _mark_read(user, slug: str, message_id: int) -> bool:
    """Move the user's marker forward (never back); True if it moved."""
    room = Room.objects.get(slug=slug)
    if not room.messages.filter(pk=message_id).exists():
        raise PermissionDenied("no such message in this room")
    marker, _ = ReadMarker.objects.get_or_create(user=user, room=room)
    if marker.last_read_id >= message_id:
        return False
    marker.last_read_id = message_id
    marker.save(update_fields=["last_read_id", "updated_at"])
    return True
