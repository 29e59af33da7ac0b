import asyncio

import realtime
from realtime.consumers import RealtimeConsumer
from realtime.exceptions import PermissionDenied
from realtime.permissions import BasePermission, IsAuthenticated, IsStaff


class IsRoomMember(BasePermission):
    """Rooms 1 and 2 are open to any signed-in user; room 'secret' to staff only."""

    message = "Not a member of this room."

    def has_subscribe_permission(self, consumer, group, room_id):
        user = consumer.user
        if not user.is_authenticated:
            return False
        return room_id in ("1", "2") or (room_id == "secret" and user.is_staff)


class FailsOnce(BasePermission):
    """Raises on the first subscribe to each ``flaky.<name>`` group in a process (a
    real exception in a real server: the client gets ``server_error``), then allows."""

    failed: set[str] = set()

    def has_subscribe_permission(self, consumer, group, name):
        if group not in self.failed:
            self.failed.add(group)
            raise RuntimeError(f"transient failure subscribing to {group}")
        return True


class EchoConsumer(RealtimeConsumer):
    subscriptions = {
        "room.{room_id}": [IsRoomMember],
        "public.{name}": [],
        "flaky.{name}": [FailsOnce],
    }
    ephemeral_events = {"test.typing": []}

    def get_presence_meta(self):
        return {"color": "teal", "id": "spoofed"} if self.user.is_authenticated else {}

    async def on_unsubscribe(self, group):
        if group == "public.slow-leave":
            # Holds a stopping process open for a while after its 4503s
            # (tests/e2e/test_limits.py: a stopping process refuses new clients).
            await asyncio.sleep(3)

    @realtime.handler("test.echo")
    async def echo(self, message):
        return {"text": message.data["text"], "user": self.user.get_username()}

    @realtime.handler("test.boom")
    async def boom(self, message):
        raise RuntimeError("secret internals /etc/passwd")

    @realtime.handler("test.say")
    async def say(self, message):
        seq = await self.notify(message.data["group"], "test.say", message.data)
        return {"seq": seq}

    @realtime.handler("test.secret", permission_classes=[IsStaff])
    async def secret(self, message):
        return {"ok": True}


class FeedConsumer(EchoConsumer):
    """A catch-all pattern that would also match personal groups (realtime.W005)."""

    subscriptions = {"{feed}.{key}": []}


class AuthConsumer(EchoConsumer):
    permission_classes = [IsAuthenticated]


class StaffConsumer(EchoConsumer):
    permission_classes = [IsAuthenticated]

    async def on_connect(self):
        if not self.user.is_staff:
            raise PermissionDenied("staff only")


class BrokenConsumer(EchoConsumer):
    async def on_connect(self):
        raise RuntimeError("bug outside any handler")


class VersionedConsumer(RealtimeConsumer):
    """Broadcasts versioned events to ``public.<room>`` (tests/integration/test_versioning.py)."""

    subscriptions = {"public.{name}": []}

    @realtime.handler("test.greet")
    async def greet(self, message):
        seq = await self.notify(
            f"public.{message.data['room']}", "test.greet", message.data
        )
        return {"v": message.v, "seq": seq, "data": message.data}

    @realtime.handler("test.poll")
    async def poll(self, message):
        seq = await self.notify(
            f"public.{message.data['room']}", "test.poll", message.data
        )
        return {"v": message.v, "seq": seq, "data": message.data}
