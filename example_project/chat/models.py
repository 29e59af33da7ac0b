"""Rooms, their messages, and how far each user has read in each room."""

from django.conf import settings
from django.db import models


class Room(models.Model):
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def group(self) -> str:
        """The realtime group every viewer of the room subscribes to."""
        return f"room.{self.slug}"


class Message(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    text = models.TextField(max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["room", "id"], name="chat_msg_room_id")]

    def __str__(self) -> str:
        return f"{self.author} in {self.room}: {self.text[:40]}"

    def as_event(self) -> dict:
        """The ``chat.message`` payload: what pages render, live or from the API."""
        return {
            "id": self.pk,
            "room": self.room.slug,
            "author": self.author.get_username(),
            "text": self.text,
            "created_at": self.created_at,
        }


class ReadMarker(models.Model):
    """A read receipt: ``user`` has read ``room`` up to message ``last_read_id``."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="markers")
    last_read_id = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "room"], name="chat_one_marker")
        ]
