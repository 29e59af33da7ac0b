from rest_framework import serializers

import realtime


@realtime.event("chat.message", version=1)
class ChatMessage(serializers.Serializer):
    """A message posted in a chat room."""

    room = serializers.SlugField()
    text = serializers.CharField(max_length=2000)
    author = serializers.CharField(required=False, max_length=150)
