"""The chat's event types, discovered by realtime at start-up.

Fields marked ``read_only`` are set by the server: a client cannot send them, but
outgoing payloads keep them.
"""

from rest_framework import serializers

import realtime


@realtime.event("chat.message", version=1)
class ChatMessage(serializers.Serializer):
    """A message posted in a room (sent by a client; broadcast once stored)."""

    room = serializers.SlugField()
    text = serializers.CharField(max_length=2000)
    id = serializers.IntegerField(read_only=True)
    author = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)


@realtime.event("chat.typing", version=1)
class ChatTyping(serializers.Serializer):
    """Someone is typing in a room: an ephemeral event, relayed to the room's other
    members with ``user`` ({"id", "username"}) set by the server."""

    room = serializers.SlugField()


@realtime.event("chat.read", version=1)
class ChatRead(serializers.Serializer):
    """A read receipt: ``user`` has read ``room`` up to message ``message_id``."""

    room = serializers.SlugField()
    message_id = serializers.IntegerField(min_value=1)
    user = serializers.CharField(read_only=True)


@realtime.event("chat.mention", version=1, direction="server")
class ChatMention(serializers.Serializer):
    """You were mentioned (``@you``) in a room: sent with ``notify_user(persist=True)``."""

    room = serializers.SlugField()
    message_id = serializers.IntegerField()
    author = serializers.CharField()
    text = serializers.CharField()


@realtime.event("dashboard.tick", version=1, direction="server")
class DashboardTick(serializers.Serializer):
    """One process's figures, pushed to ``dashboard`` once a second."""

    process = serializers.CharField()
    at = serializers.FloatField()
    connections = serializers.IntegerField(min_value=0)
    viewers = serializers.IntegerField(min_value=0)
    messages = serializers.IntegerField(min_value=0)
    messages_per_second = serializers.FloatField(min_value=0)
    # Frames handed to sockets (realtime.metrics, when prometheus-client is installed).
    deliveries_per_second = serializers.FloatField(min_value=0, required=False)
    uptime = serializers.FloatField(min_value=0)
